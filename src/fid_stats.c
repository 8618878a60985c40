/* FID statistics accumulation and the Fréchet distance (see fid_stats.h). */
#include "fid_stats.h"

#include <cblas.h>
#include <float.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* LAPACK's symmetric eigensolver (divide and conquer), from OpenBLAS. The two trailing size_t
 * arguments are the hidden lengths of the character arguments in gfortran's calling
 * convention. */
void dsyevd_(const char *jobz, const char *uplo, const int *n, double *a, const int *lda, double *w, double *work,
             const int *lwork, int *iwork, const int *liwork, int *info, size_t jobz_len, size_t uplo_len);

/* ---- accumulation ---- */

void fid_stats_init(FidStats *s, int dim)
{
    if (dim < 1) mg_panic("fid_stats_init: dim %d", dim);
    memset(s, 0, sizeof *s);
    size_t d = (size_t)dim;
    s->dim = dim;
    s->shift = mg_calloc(d, sizeof *s->shift);
    s->sum = mg_calloc(d, sizeof *s->sum);
    s->gram = mg_calloc(mg_mul_size(d, d, "FID covariance"), sizeof *s->gram);
    s->block = mg_malloc(mg_mul_size(FID_STATS_BLOCK_ROWS * d, sizeof *s->block, "FID feature block"));
}

void fid_stats_free(FidStats *s)
{
    free(s->shift);
    free(s->sum);
    free(s->gram);
    free(s->block);
    memset(s, 0, sizeof *s);
}

/* Accumulates the buffered rows: the first flush fixes the shift to their mean, then each row
 * minus the shift goes into the sum and, through dsyrk, into the Gram matrix. */
static void flush_block(FidStats *s)
{
    size_t d = (size_t)s->dim, rows = (size_t)s->block_rows;
    if (rows == 0) return;
    if (!s->shift_ready) {
        for (size_t r = 0; r < rows; r++) {
            for (size_t j = 0; j < d; j++) s->shift[j] += s->block[r * d + j];
        }
        for (size_t j = 0; j < d; j++) s->shift[j] /= (double)rows;
        s->shift_ready = true;
    }
    for (size_t r = 0; r < rows; r++) {
        double *row = s->block + r * d;
        for (size_t j = 0; j < d; j++) {
            row[j] -= s->shift[j];
            s->sum[j] += row[j];
        }
    }
    /* gram (upper triangle) += blockᵀ · block */
    if (omp_in_parallel()) mg_panic("fid_stats: BLAS called inside an OpenMP parallel region");
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, s->dim, (int)rows, 1.0, s->block, s->dim, 1.0, s->gram, s->dim);
    s->block_rows = 0;
}

bool fid_stats_add(FidStats *s, const float *features, int64_t rows, char *err, size_t err_size)
{
    if (s->finished) mg_panic("fid_stats_add after fid_stats_finish");
    size_t d = (size_t)s->dim;
    for (int64_t r = 0; r < rows; r++) {
        const float *x = features + (size_t)r * d;
        double *row = s->block + (size_t)s->block_rows * d;
        for (size_t j = 0; j < d; j++) {
            if (!isfinite(x[j])) {
                return mg_set_error(err, err_size, "feature vector %lld has %g in column %zu; features must be finite",
                                    (long long)(s->count + r), (double)x[j], j);
            }
            row[j] = x[j];
        }
        if (++s->block_rows == FID_STATS_BLOCK_ROWS) flush_block(s);
    }
    s->count += rows;
    return true;
}

bool fid_stats_finish(FidStats *s, double *mu, double *sigma, char *err, size_t err_size)
{
    if (s->count < 2) {
        return mg_set_error(err, err_size, "FID statistics need at least 2 images, got %lld", (long long)s->count);
    }
    flush_block(s);
    s->finished = true;

    size_t d = (size_t)s->dim;
    double n = (double)s->count;
    for (size_t j = 0; j < d; j++) mu[j] = s->shift[j] + s->sum[j] / n;
    /* sigma = (Σ (x − shift)(x − shift)ᵀ − sum sumᵀ / N) / (N − 1), the covariance of x */
    for (size_t i = 0; i < d; i++) {
        for (size_t j = i; j < d; j++) {
            double v = (s->gram[i * d + j] - s->sum[i] * s->sum[j] / n) / (n - 1.0);
            sigma[i * d + j] = v;
            sigma[j * d + i] = v;
        }
    }
    return true;
}

/* ---- Fréchet distance ---- */

typedef struct EigenSolver {
    int n;
    double *work;
    int *iwork;
    int lwork, liwork;
} EigenSolver;

/* Sizes the dsyevd workspace for eigenvectors, which also covers eigenvalues only. */
static void eigen_solver_init(EigenSolver *solver, int n)
{
    double work_size;
    int iwork_size, info, query = -1;
    dsyevd_("V", "L", &n, NULL, &n, NULL, &work_size, &query, &iwork_size, &query, &info, 1, 1);
    if (info != 0) mg_panic("dsyevd workspace query failed with info %d", info);
    solver->n = n;
    solver->lwork = (int)work_size;
    solver->liwork = iwork_size;
    solver->work = mg_malloc((size_t)solver->lwork * sizeof *solver->work);
    solver->iwork = mg_malloc((size_t)solver->liwork * sizeof *solver->iwork);
}

static void eigen_solver_free(EigenSolver *solver)
{
    free(solver->work);
    free(solver->iwork);
}

/* Eigenvalues (ascending) of the symmetric matrix a, and with `vectors` its eigenvectors in
 * place of a: row j of the row-major buffer is the eigenvector of eigenvalue j. Returns
 * LAPACK's info, which is positive when the algorithm failed to converge. */
static int symmetric_eigen(EigenSolver *solver, bool vectors, double *a, double *eigenvalues)
{
    if (omp_in_parallel()) mg_panic("fid_frechet_distance: LAPACK called inside an OpenMP parallel region");
    int info;
    dsyevd_(vectors ? "V" : "N", "L", &solver->n, a, &solver->n, eigenvalues, solver->work, &solver->lwork,
            solver->iwork, &solver->liwork, &info, 1, 1);
    if (info < 0) mg_panic("dsyevd rejected argument %d", -info);
    return info;
}

/* Copies (s + sᵀ)/2 + offset·I into out. */
static void symmetrize_with_offset(const double *s, int n, double offset, double *out)
{
    size_t d = (size_t)n;
    for (size_t i = 0; i < d; i++) {
        for (size_t j = 0; j < d; j++) out[i * d + j] = 0.5 * (s[i * d + j] + s[j * d + i]);
        out[i * d + i] += offset;
    }
}

/* Rank and extreme eigenvalues, with the offset taken back out of the eigenvalues. */
static void describe_spectrum(const double *eigenvalues, int n, double offset, int *rank, double *min, double *max)
{
    *min = eigenvalues[0] - offset;
    *max = eigenvalues[n - 1] - offset;
    double tolerance = fmax(*max, 0.0) * n * DBL_EPSILON;
    *rank = 0;
    for (int i = 0; i < n; i++) *rank += eigenvalues[i] - offset > tolerance;
}

typedef struct FrechetWorkspace {
    EigenSolver solver;
    double *a;        /* (D, D) eigenvectors of sigma1, then A = diag(√λ) Vᵀ */
    double *sigma2;   /* (D, D) symmetrised sigma2 + offset */
    double *product;  /* (D, D) A · sigma2 */
    double *m;        /* (D, D) A · sigma2 · Aᵀ */
    double *eigenvalues1, *eigenvalues2, *eigenvalues_m;  /* (D) each */
} FrechetWorkspace;

/* Computes Tr √((sigma1 + offset·I)(sigma2 + offset·I)) and the spectra of both matrices.
 * Returns false when an eigendecomposition fails to converge. */
static bool trace_sqrt_product(const double *sigma1, const double *sigma2, int n, double offset, FrechetWorkspace *ws,
                               FidDistanceInfo *info)
{
    size_t d = (size_t)n;
    symmetrize_with_offset(sigma1, n, offset, ws->a);
    symmetrize_with_offset(sigma2, n, offset, ws->sigma2);
    if (symmetric_eigen(&ws->solver, true, ws->a, ws->eigenvalues1) != 0) return false;
    memcpy(ws->m, ws->sigma2, d * d * sizeof *ws->m);
    if (symmetric_eigen(&ws->solver, false, ws->m, ws->eigenvalues2) != 0) return false;
    describe_spectrum(ws->eigenvalues1, n, offset, &info->rank1, &info->min_eigenvalue1, &info->max_eigenvalue1);
    describe_spectrum(ws->eigenvalues2, n, offset, &info->rank2, &info->min_eigenvalue2, &info->max_eigenvalue2);

    /* A = diag(√λ) Vᵀ, so that sigma1 = Aᵀ A; rounding can leave tiny negative λ. */
    for (size_t j = 0; j < d; j++) {
        double scale = sqrt(fmax(ws->eigenvalues1[j], 0.0));
        for (size_t k = 0; k < d; k++) ws->a[j * d + k] *= scale;
    }
    /* M = A sigma2 Aᵀ has the eigenvalues of Aᵀ A sigma2 = sigma1 sigma2. */
    cblas_dsymm(CblasRowMajor, CblasRight, CblasUpper, n, n, 1.0, ws->sigma2, n, ws->a, n, 0.0, ws->product, n);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1.0, ws->product, n, ws->a, n, 0.0, ws->m, n);
    for (size_t i = 0; i < d; i++) {
        for (size_t j = i + 1; j < d; j++) {
            double v = 0.5 * (ws->m[i * d + j] + ws->m[j * d + i]);
            ws->m[i * d + j] = v;
            ws->m[j * d + i] = v;
        }
    }
    if (symmetric_eigen(&ws->solver, false, ws->m, ws->eigenvalues_m) != 0) return false;

    double trace = 0.0;
    for (size_t i = 0; i < d; i++) trace += sqrt(fmax(ws->eigenvalues_m[i], 0.0));
    info->trace_sqrt = trace;
    return true;
}

static bool check_statistics(const char *label, const double *mu, const double *sigma, int n, char *err,
                             size_t err_size)
{
    size_t d = (size_t)n;
    double largest = 0.0;
    for (size_t i = 0; i < d; i++) {
        if (!isfinite(mu[i])) return mg_set_error(err, err_size, "%s: mu[%zu] is %g; statistics must be finite", label, i, mu[i]);
    }
    for (size_t i = 0; i < d * d; i++) {
        if (!isfinite(sigma[i])) {
            return mg_set_error(err, err_size, "%s: sigma[%zu, %zu] is %g; statistics must be finite", label, i / d,
                                i % d, sigma[i]);
        }
        largest = fmax(largest, fabs(sigma[i]));
    }
    /* Covariances from np.cov or fid_stats_finish are symmetric to the last bit; a relative
     * tolerance still admits files that went through other arithmetic. */
    double tolerance = 1e-6 * largest;
    for (size_t i = 0; i < d; i++) {
        for (size_t j = i + 1; j < d; j++) {
            if (fabs(sigma[i * d + j] - sigma[j * d + i]) > tolerance) {
                return mg_set_error(err, err_size, "%s: sigma is not symmetric: sigma[%zu, %zu] = %.17g but sigma[%zu, %zu] = %.17g",
                                    label, i, j, sigma[i * d + j], j, i, sigma[j * d + i]);
            }
        }
    }
    return true;
}

/* True when a covariance has an eigenvalue below zero by more than float64 rounding explains:
 * np.cov gives about -D·1e-16·λmax at worst, a matrix rounded to float32 about -1e-7·λmax. */
static bool is_indefinite(double min_eigenvalue, double max_eigenvalue)
{
    return min_eigenvalue < -1e-9 * fmax(max_eigenvalue, 0.0);
}

static void warn_about_statistics(const char *label, int64_t count, bool few_images, int rank, bool indefinite,
                                  double min_eigenvalue, double max_eigenvalue, int n)
{
    if (few_images) {
        mg_warn("%s: %lld images, fewer than the %d recommended: FID is biased upward with few images, so compare it "
                "only with scores computed from as many images",
                label, (long long)count, FID_RECOMMENDED_MIN_IMAGES);
    }
    if (rank < n) {
        mg_warn("%s: the covariance is singular (rank %d of %d), from fewer images than feature dimensions or a "
                "collapsed generator",
                label, rank, n);
    }
    if (indefinite) {
        mg_warn("%s: the covariance has negative eigenvalues down to %g (largest %g), which are treated as 0", label,
                min_eigenvalue, max_eigenvalue);
    }
}

double fid_frechet_distance(const double *mu1, const double *sigma1, const double *mu2, const double *sigma2, int dim,
                            const FidOptions *options, FidDistanceInfo *info_out, char *err, size_t err_size)
{
    FidOptions defaults = {0};
    const FidOptions *opt = options ? options : &defaults;
    const char *label1 = opt->label1 ? opt->label1 : "statistics 1";
    const char *label2 = opt->label2 ? opt->label2 : "statistics 2";
    FidDistanceInfo info = {0};
    if (info_out) *info_out = info;

    if (dim < 1 || dim > FID_MAX_DIM) {
        mg_set_error(err, err_size, "feature dimension %d is out of range; expected 1 to %d", dim, FID_MAX_DIM);
        return NAN;
    }
    if (!check_statistics(label1, mu1, sigma1, dim, err, err_size) ||
        !check_statistics(label2, mu2, sigma2, dim, err, err_size)) {
        return NAN;
    }

    size_t d = (size_t)dim;
    for (size_t i = 0; i < d; i++) {
        double diff = mu1[i] - mu2[i];
        info.mean_term += diff * diff;
        info.trace1 += sigma1[i * d + i];
        info.trace2 += sigma2[i * d + i];
    }

    FrechetWorkspace ws;
    size_t matrix_bytes = mg_mul_size(d * d, sizeof(double), "Frechet distance workspace");
    eigen_solver_init(&ws.solver, dim);
    ws.a = mg_malloc(matrix_bytes);
    ws.sigma2 = mg_malloc(matrix_bytes);
    ws.product = mg_malloc(matrix_bytes);
    ws.m = mg_malloc(matrix_bytes);
    ws.eigenvalues1 = mg_malloc(d * sizeof(double));
    ws.eigenvalues2 = mg_malloc(d * sizeof(double));
    ws.eigenvalues_m = mg_malloc(d * sizeof(double));

    bool always = opt->offset_mode == FID_OFFSET_ALWAYS;
    bool ok = trace_sqrt_product(sigma1, sigma2, dim, always ? FID_OFFSET_EPSILON : 0.0, &ws, &info);
    info.offset_applied = always;
    if (!ok && !always) {
        if (!opt->quiet) {
            mg_warn("the eigendecomposition failed to converge; retrying with %g added to the diagonal of both "
                    "covariances, as pytorch-fid does when its matrix square root fails",
                    FID_OFFSET_EPSILON);
        }
        info.offset_applied = true;
        ok = trace_sqrt_product(sigma1, sigma2, dim, FID_OFFSET_EPSILON, &ws, &info);
    }

    eigen_solver_free(&ws.solver);
    free(ws.a);
    free(ws.sigma2);
    free(ws.product);
    free(ws.m);
    free(ws.eigenvalues1);
    free(ws.eigenvalues2);
    free(ws.eigenvalues_m);
    if (!ok) {
        mg_set_error(err, err_size, "the eigendecomposition of the %d x %d covariances failed to converge, even with %g "
                     "added to their diagonals", dim, dim, FID_OFFSET_EPSILON);
        return NAN;
    }

    info.distance = info.mean_term + info.trace1 + info.trace2 - 2.0 * info.trace_sqrt;
    info.few_images1 = opt->count1 > 0 && opt->count1 < FID_RECOMMENDED_MIN_IMAGES;
    info.few_images2 = opt->count2 > 0 && opt->count2 < FID_RECOMMENDED_MIN_IMAGES;
    info.not_semidefinite1 = is_indefinite(info.min_eigenvalue1, info.max_eigenvalue1);
    info.not_semidefinite2 = is_indefinite(info.min_eigenvalue2, info.max_eigenvalue2);
    if (!opt->quiet) {
        warn_about_statistics(label1, opt->count1, info.few_images1, info.rank1, info.not_semidefinite1,
                              info.min_eigenvalue1, info.max_eigenvalue1, dim);
        warn_about_statistics(label2, opt->count2, info.few_images2, info.rank2, info.not_semidefinite2,
                              info.min_eigenvalue2, info.max_eigenvalue2, dim);
    }
    if (info_out) *info_out = info;
    return info.distance;
}
