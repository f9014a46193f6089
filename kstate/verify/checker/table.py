"""The visited set: an open-addressing hash table of 64-bit fingerprints, batch-operated.

Where it sits: inside the BFS coordinator (``bfs.py``); it is the checker's memory.

Why numpy: a Python ``dict``/``set`` of fingerprints costs 60-100 bytes per state and
the brief for stored states is <= 100 bytes *in total*. Here a slot is 12 bytes (the
mixed fingerprint and a 32-bit state id) at a load factor kept between 0.3 and 0.6, and
BFS hands the table whole batches of candidate fingerprints, so probing runs as a
handful of vectorised rounds instead of one Python call per candidate.

Fingerprints are mixed through a bijection (murmur3's finaliser after adding an odd
constant) before use, so slot numbers are well spread even for packed-integer states
whose ``hash`` is the integer itself. Slot value 0 marks "empty"; the one fingerprint
that mixes to 0 would be mistaken for empty, a 2**-64 event per state that we accept like
every other fingerprint collision.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

U64 = npt.NDArray[np.uint64]
I64 = npt.NDArray[np.int64]

_C0 = np.uint64(0x9E3779B97F4A7C15)
_C1 = np.uint64(0xFF51AFD7ED558CCD)
_C2 = np.uint64(0xC4CEB9FE1A85EC53)
_S33 = np.uint64(33)
_NONE = np.uint32(0xFFFFFFFF)


def mix(fps: npt.NDArray[np.int64]) -> U64:
    """Bijective 64-bit mixing of fingerprints (``hash`` values viewed as unsigned)."""
    with np.errstate(over="ignore"):
        x = fps.view(np.uint64) + _C0
        x ^= x >> _S33
        x *= _C1
        x ^= x >> _S33
        x *= _C2
        x ^= x >> _S33
    return x


class FingerprintTable:
    """Maps mixed fingerprints to state ids (0, 1, 2, ... in insertion order by default)."""

    MAX_LOAD = 0.6

    def __init__(self, capacity: int = 1 << 12) -> None:
        cap = 1 << max(4, (capacity - 1).bit_length())
        self._keys = np.zeros(cap, np.uint64)
        self._vals = np.zeros(cap, np.uint32)
        self.size = 0

    @property
    def capacity(self) -> int:
        return int(self._keys.size)

    @property
    def nbytes(self) -> int:
        return int(self._keys.nbytes + self._vals.nbytes)

    def _reserve(self, extra: int) -> None:
        need = self.size + extra
        cap = self.capacity
        while need > cap * self.MAX_LOAD:
            cap *= 2
        if cap == self.capacity:
            return
        used = self._keys != 0
        keys, vals = self._keys[used], self._vals[used]
        # free the old table before allocating the new one, and rehash in slices: the
        # resize is the checker's memory peak
        del used
        self._keys = self._vals = np.empty(0, np.uint64)
        self._keys = np.zeros(cap, np.uint64)
        self._vals = np.zeros(cap, np.uint32)
        step = 1 << 17
        for start in range(0, keys.size, step):
            part = keys[start:start + step]
            self._vals[self._slots_for_new(part)] = vals[start:start + step]

    def _slots_for_new(self, keys: U64) -> I64:
        """Empty slots for distinct keys known to be absent (rehash)."""
        mask = np.uint64(self.capacity - 1)
        pos = (keys & mask).astype(np.int64)
        out = np.empty(keys.size, np.int64)
        pending = np.arange(keys.size)
        tab = self._keys
        while pending.size:
            p = pos[pending]
            free = tab[p] == 0
            cand, cp = pending[free], p[free]
            tab[cp] = keys[cand]
            won = tab[cp] == keys[cand]
            out[cand[won]] = cp[won]
            retry = np.concatenate([pending[~free], cand[~won]])
            retry.sort()
            pos[retry] = (pos[retry] + 1) & int(mask)
            pending = retry
        return out

    def insert(self, keys: U64) -> tuple[I64, npt.NDArray[np.bool_]]:
        """Insert a batch (duplicates allowed). Returns every key's id and a mask marking,
        for each key not seen before, its first occurrence in the batch. New keys get
        the next free ids; their order is unspecified (BFS renumbers each level)."""
        self._reserve(keys.size)
        n = keys.size
        ids = np.empty(n, np.int64)
        new = np.zeros(n, np.bool_)
        mask = self.capacity - 1
        pos = (keys & np.uint64(mask)).astype(np.int64)
        pending = np.arange(n)
        tab, vals = self._keys, self._vals
        while pending.size:
            p = pos[pending]
            cur = tab[p]
            k = keys[pending]
            hit = cur == k
            ids[pending[hit]] = vals[p[hit]]
            free = cur == 0
            moved = pending[~hit & ~free]
            if free.any():
                fi, fp = pending[free], p[free]
                tab[fp] = k[free]
                won = tab[fp] == k[free]
                # Equal keys travel in lockstep and claim the same slot together; a
                # different key that lost the slot probes on. Among equal keys the first
                # in the batch is the new one: the slot's value briefly holds the smallest
                # claimant index (ufunc.at has defined semantics for repeated indices).
                wi, wp = fi[won], fp[won]
                vals[wp] = _NONE
                np.minimum.at(vals, wp, wi.astype(np.uint32))
                first = vals[wp] == wi
                fresh = np.flatnonzero(first)
                vals[wp[fresh]] = np.arange(self.size, self.size + fresh.size, dtype=np.uint32)
                ids[wi] = vals[wp]
                new[wi[fresh]] = True
                self.size += fresh.size
                moved = np.concatenate([moved, fi[~won]])
                moved.sort()
            pos[moved] = (pos[moved] + 1) & mask
            pending = moved
        return ids, new

    def _find_slots(self, keys: U64) -> I64:
        """Slots holding ``keys`` (-1 where absent)."""
        mask = self.capacity - 1
        out = np.full(keys.size, -1, np.int64)
        pos = (keys & np.uint64(mask)).astype(np.int64)
        pending = np.arange(keys.size)
        tab = self._keys
        while pending.size:
            p = pos[pending]
            cur = tab[p]
            hit = cur == keys[pending]
            out[pending[hit]] = p[hit]
            go_on = ~hit & (cur != 0)
            pending = pending[go_on]
            pos[pending] = (pos[pending] + 1) & mask
        return out

    def find(self, keys: U64) -> I64:
        """Ids of ``keys`` (-1 where absent)."""
        slots = self._find_slots(keys)
        out = np.full(keys.size, -1, np.int64)
        present = slots >= 0
        out[present] = self._vals[slots[present]]
        return out

    def assign(self, keys: U64, ids: I64) -> None:
        """Change the ids of present keys (BFS renumbers each level once it is complete)."""
        slots = self._find_slots(keys)
        if (slots < 0).any():
            raise KeyError("assign() of a fingerprint that is not in the table")
        self._vals[slots] = ids.astype(np.uint32)
