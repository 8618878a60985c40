"""Write the ZIP archives that tests/test_zip.c reads.

Run from the repository root with Debian's Python (only the standard library is needed):
    /usr/bin/python3 tests/gen_zip_fixtures.py
The output is deterministic, so rerunning it leaves the committed files unchanged.

tests/data/zip/
  python_mixed.zip    zipfile with a stored member, a deflate member, an empty member and an
                      archive comment
  force_zip64.zip     one deflate member written with force_zip64=True, as numpy.savez does:
                      the local header carries a ZIP64 extra field, the central directory not
  zip64_handmade.zip  one stored member whose central header has every size and the offset
                      set to 0xffffffff and given in a ZIP64 extra field, with a ZIP64 end
                      record and locator; built byte by byte because zipfile writes these only
                      for members over 4 GiB
"""
import os
import struct
import zipfile
import zlib

OUT = os.path.join("tests", "data", "zip")
FIXED_TIME = (1980, 1, 1, 0, 0, 0)


def pattern(n, a=31, b=7):
    """Bytes (i*a + b) mod 251: deterministic, not trivially compressible, easy to rebuild in C."""
    return bytes((i * a + b) % 251 for i in range(n))


def write_member(z, name, data, method):
    info = zipfile.ZipInfo(name, FIXED_TIME)
    info.compress_type = method
    z.writestr(info, data)


def python_mixed(path):
    with zipfile.ZipFile(path, "w") as z:
        write_member(z, "stored.txt", b"stored member\n", zipfile.ZIP_STORED)
        write_member(z, "deflated.bin", pattern(5000), zipfile.ZIP_DEFLATED)
        write_member(z, "empty", b"", zipfile.ZIP_STORED)
        z.comment = b"fixture comment"


def force_zip64(path):
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        info = zipfile.ZipInfo("member.bin", FIXED_TIME)
        info.compress_type = zipfile.ZIP_DEFLATED
        with z.open(info, "w", force_zip64=True) as f:
            f.write(pattern(3000, 17, 5))


def zip64_handmade(path):
    name = b"payload.bin"
    data = pattern(1000, 13, 1)
    crc = zlib.crc32(data)
    size = len(data)
    local_extra = struct.pack("<HHQQ", 0x0001, 16, size, size)
    local = struct.pack("<IHHHHHIIIHH", 0x04034B50, 45, 0, 0, 0, 0x21, crc,
                        0xFFFFFFFF, 0xFFFFFFFF, len(name), len(local_extra)) + name + local_extra
    central_extra = struct.pack("<HHQQQ", 0x0001, 24, size, size, 0)
    central = struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 45, 45, 0, 0, 0, 0x21, crc,
                          0xFFFFFFFF, 0xFFFFFFFF, len(name), len(central_extra), 0, 0, 0, 0,
                          0xFFFFFFFF) + name + central_extra
    cd_offset = len(local) + size
    zip64_end_offset = cd_offset + len(central)
    zip64_end = struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, 1, 1, len(central), cd_offset)
    locator = struct.pack("<IIQI", 0x07064B50, 0, zip64_end_offset, 1)
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    with open(path, "wb") as f:
        f.write(local + data + central + zip64_end + locator + end)


def main():
    os.makedirs(OUT, exist_ok=True)
    python_mixed(os.path.join(OUT, "python_mixed.zip"))
    force_zip64(os.path.join(OUT, "force_zip64.zip"))
    zip64_handmade(os.path.join(OUT, "zip64_handmade.zip"))

    # Every archive must read back with Python's own reader.
    expected = {
        "python_mixed.zip": {"stored.txt": b"stored member\n", "deflated.bin": pattern(5000), "empty": b""},
        "force_zip64.zip": {"member.bin": pattern(3000, 17, 5)},
        "zip64_handmade.zip": {"payload.bin": pattern(1000, 13, 1)},
    }
    for archive, members in expected.items():
        with zipfile.ZipFile(os.path.join(OUT, archive)) as z:
            assert z.testzip() is None, archive
            for name, data in members.items():
                assert z.read(name) == data, (archive, name)
        print("wrote", os.path.join(OUT, archive))


if __name__ == "__main__":
    main()
