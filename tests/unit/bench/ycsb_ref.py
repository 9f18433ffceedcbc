#!/usr/bin/env python3
"""Independent re-implementation of YCSB's ZipfianGenerator, ScrambledZipfianGenerator,
SkewedLatestGenerator and Utils.fnvhash64 (from YCSB's Java sources), fed by the same
xoshiro256** / splitmix64 uniform doubles as bench/ycsb.c. It printed the expected sequences
hard-coded in test_ycsb.c; rerun it to regenerate them:  python3 tests/unit/bench/ycsb_ref.py
"""
import math

M64 = (1 << 64) - 1


def to_signed(x):
    x &= M64
    return x - (1 << 64) if x >> 63 else x


class Rng:
    def __init__(self, seed):
        self.s = []
        for _ in range(4):
            seed = (seed + 0x9E3779B97F4A7C15) & M64
            z = seed
            z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
            z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
            self.s.append(z ^ (z >> 31))

    def next(self):
        s = self.s
        rotl = lambda x, k: ((x << k) | (x >> (64 - k))) & M64
        out = (rotl((s[1] * 5) & M64, 7) * 9) & M64
        t = (s[1] << 17) & M64
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = rotl(s[3], 45)
        return out

    def unit(self):
        return (self.next() >> 11) * 2.0 ** -53


def fnvhash64(val):
    h = 0xCBF29CE484222325
    for _ in range(8):
        octet = val & 0xFF
        val >>= 8  # Python's >> on ints is arithmetic, like Java's on a long
        h ^= octet
        h = (h * 1099511628211) & M64
    h = to_signed(h)
    return h if h == -(1 << 63) else abs(h)


def zeta(st, n, theta, initial):
    s = initial
    for i in range(st, n):
        s += 1 / math.pow(i + 1, theta)
    return s


def java_long(x):
    return int(x)  # truncation toward zero, as (long) in Java


class Zipf:
    def __init__(self, mn, mx, theta, zetan, rng):
        self.items = mx - mn + 1
        self.base = mn
        self.theta = theta
        self.zeta2theta = zeta(0, 2, theta, 0)
        self.alpha = 1.0 / (1.0 - theta)
        self.zetan = zetan if zetan >= 0 else zeta(0, self.items, theta, 0)
        self.countforzeta = self.items
        self.eta = (1 - math.pow(2.0 / self.items, 1 - theta)) / (1 - self.zeta2theta / self.zetan)
        self.next(rng)

    def next_n(self, rng, itemcount):
        if itemcount > self.countforzeta:
            self.zetan = zeta(self.countforzeta, itemcount, self.theta, self.zetan)
            self.countforzeta = itemcount
            self.eta = (1 - math.pow(2.0 / self.items, 1 - self.theta)) / (1 - self.zeta2theta / self.zetan)
        u = rng.unit()
        uz = u * self.zetan
        if uz < 1.0:
            return self.base
        if uz < 1.0 + math.pow(0.5, self.theta):
            return self.base + 1
        return self.base + java_long(float(itemcount) * math.pow(self.eta * u - self.eta + 1, self.alpha))

    def next(self, rng):
        return self.next_n(rng, self.items)


def java_rem(a, b):
    r = abs(a) % abs(b)
    return -r if a < 0 else r


class Scrambled:
    def __init__(self, mn, mx, rng):
        self.min, self.itemcount = mn, mx - mn + 1
        self.gen = Zipf(0, 10000000000000000, 0.99, 26.46902820178302, rng)

    def next(self, rng):
        return self.min + java_rem(fnvhash64(self.gen.next(rng)), self.itemcount)


def main():
    print("fnvhash64:", [fnvhash64(v) for v in (0, 1, 2, 42, 999999, 1 << 40)])
    r = Rng(1)
    z = Zipf(0, 999, 0.99, -1, r)
    print("zipfian(0..999) seed 1:", [z.next(r) for _ in range(16)])
    r = Rng(7)
    s = Scrambled(0, 999999, r)
    print("scrambled(0..999999) seed 7:", [s.next(r) for _ in range(16)])
    # SkewedLatestGenerator over a counter whose last value is 999 (1000 records), then two
    # inserts acknowledged (last 1001): the zipfian grows its zeta incrementally.
    r = Rng(3)
    last = 999
    lz = Zipf(0, last - 1, 0.99, -1, r)
    lz.next_n(r, last)  # the constructor's nextValue()
    seq = [last - lz.next_n(r, last) for _ in range(8)]
    last = 1001
    seq += [last - lz.next_n(r, last) for _ in range(8)]
    print("latest(1000 records, +2 after 8) seed 3:", seq)
    r = Rng(11)
    print("unit doubles seed 11:", [repr(r.unit()) for _ in range(3)])


if __name__ == "__main__":
    main()
