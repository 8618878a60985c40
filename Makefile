# mixgan: one binary that trains GANs on small images, samples them and scores them with FID.
#
#   make                  build ./mixgan
#   make demo             train the hybrid briefly on the bundled crops and sample a grid
#   make test             build and run the test suite (ends with "N passed, N failed")
#   make test SANITIZE=1  the same under AddressSanitizer and UndefinedBehaviorSanitizer
#   make bench-ops        GFLOP/s of the matmul-bound ops next to this machine's sgemm
#   make bench            training and FID throughput of the three reference configs
#
# OpenBLAS comes from Debian's OpenMP build (libopenblas-openmp-dev). mixgan's own loops use
# OpenMP too, so both share one thread pool. With the default pthread build, OpenBLAS worker
# threads keep spinning after each sgemm and slow the OpenMP loops that follow by 2-3x on two
# cores. Point BLAS_LIB_DIR and BLAS_INC_DIR elsewhere to use another OpenBLAS.

CC ?= cc
ARCH ?= -march=native
BLAS_LIB_DIR ?= /usr/lib/x86_64-linux-gnu/openblas-openmp
BLAS_INC_DIR ?= /usr/include/x86_64-linux-gnu/openblas-openmp

CFLAGS_BASE = -std=gnu11 -Wall -Wextra -Wshadow -Wno-unused-parameter -Wno-psabi -Werror=implicit-function-declaration -fopenmp \
              -Iinclude -isystem /usr/include/stb -isystem /usr/include/cjson -I$(BLAS_INC_DIR)
LDLIBS = -L$(BLAS_LIB_DIR) -Wl,-rpath,$(BLAS_LIB_DIR) -lopenblas -lstb -lcjson -ljpeg -lgomp -lm -lpthread

ifeq ($(SANITIZE),1)
  BUILD = build/sanitize
  CFLAGS_OPT = -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
  LDFLAGS += -fsanitize=address,undefined
else
  BUILD = build/release
  # -fno-trapping-math lets GCC vectorize loops with selects such as vec_expf()'s without
  # AVX-512 masks; it changes no result, as mixgan never reads the floating-point flags.
  CFLAGS_OPT = -O3 -g $(ARCH) -fno-trapping-math
endif
CFLAGS += $(CFLAGS_BASE) $(CFLAGS_OPT)

# Everything in src/ except main.c forms the library that the binary, tests and benchmarks share.
LIB_SRC = $(filter-out src/main.c,$(wildcard src/*.c src/*/*.c))
LIB_OBJ = $(LIB_SRC:%.c=$(BUILD)/%.o)
TEST_SRC = $(wildcard tests/*.c)
TEST_OBJ = $(TEST_SRC:%.c=$(BUILD)/%.o)

.PHONY: all demo test bench bench-ops clean
# Keep the objects that pattern rules build on the way, such as the benchmarks', which make
# would otherwise delete as intermediate files and rebuild next time.
.SECONDARY:
all: mixgan

ifeq ($(SANITIZE),1)
mixgan: $(BUILD)/mixgan
else
mixgan: $(BUILD)/mixgan
	@cp $< $@
endif

$(BUILD)/mixgan: $(BUILD)/src/main.o $(LIB_OBJ)
	$(QUIET)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/run-tests: $(TEST_OBJ) $(LIB_OBJ)
	$(QUIET)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# The README's first command: a short run of the hybrid on the bundled sample, then a grid of
# 64 samples in runs/demo/grid.png. It starts over each time. The grid comes from the trained
# generator (--no-ema): after 100 steps, an EMA with decay 0.999 is still 90% the initial one.
DEMO_STEPS ?= 100
demo: mixgan
	rm -rf runs/demo
	./mixgan train --config configs/hybrid.json --steps $(DEMO_STEPS) --out runs/demo
	./mixgan sample --checkpoint runs/demo/checkpoints/step_$$(printf %08d $(DEMO_STEPS)).ckpt \
		--num 64 --out runs/demo/sample --grid runs/demo/grid.png --no-ema

# The tests run the binary as a user would, so they need it built too.
test: $(BUILD)/run-tests $(BUILD)/mixgan
	MIXGAN_BIN=$(BUILD)/mixgan $(BUILD)/run-tests $(TESTS)

bench-ops: $(BUILD)/bench-ops
	$(BUILD)/bench-ops

bench: $(BUILD)/bench-ops $(BUILD)/bench-train $(BUILD)/bench-fid $(BUILD)/bench-frechet
	bench/run.sh $(BUILD)

# `make V=1` prints the full compiler command lines.
ifneq ($(V),1)
  QUIET = @
endif

# Objects depend on this file too, so that a change of flags rebuilds them.
$(BUILD)/%.o: %.c Makefile
	@mkdir -p $(dir $@)
	@$(if $(QUIET),echo "  CC      $<")
	$(QUIET)$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

clean:
	rm -rf build mixgan

-include $(LIB_OBJ:.o=.d) $(TEST_OBJ:.o=.d) $(BUILD)/src/main.d $(wildcard $(BUILD)/bench/*.d)

# The benchmark programs: one source file each in bench/, linked with the library.
$(BUILD)/bench-%: $(BUILD)/bench/bench_%.o $(LIB_OBJ)
	$(QUIET)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
