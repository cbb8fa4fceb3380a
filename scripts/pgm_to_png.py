#!/usr/bin/env python3
"""Converts a binary 8-bit PGM (P5) to a grey PNG, enlarged by an integer factor (nearest
neighbour), with the standard library only.

    scripts/pgm_to_png.py IN.pgm OUT.png [FACTOR]   (FACTOR defaults to 4)
"""
import struct
import sys
import zlib


def read_pgm(path):
    data = open(path, "rb").read()
    magic, size, maxval, pixels = data.split(b"\n", 3)
    if magic != b"P5" or maxval != b"255":
        sys.exit(f"{path}: not an 8-bit binary PGM")
    width, height = map(int, size.split())
    if len(pixels) != width * height:
        sys.exit(f"{path}: {len(pixels)} pixel bytes, expected {width}×{height}")
    return width, height, pixels


def chunk(kind, body):
    crc = zlib.crc32(kind + body) & 0xFFFFFFFF
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    factor = int(sys.argv[3]) if len(sys.argv) == 4 else 4
    width, height, pixels = read_pgm(sys.argv[1])
    rows = bytearray()
    for y in range(height * factor):
        line = pixels[(y // factor) * width:(y // factor + 1) * width]
        rows += b"\x00" + bytes(p for p in line for _ in range(factor))
    header = struct.pack(">IIBBBBB", width * factor, height * factor, 8, 0, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
    png += chunk(b"IDAT", zlib.compress(bytes(rows), 9)) + chunk(b"IEND", b"")
    open(sys.argv[2], "wb").write(png)


if __name__ == "__main__":
    main()
