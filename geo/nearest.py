"""An immutable in-memory nearest-store index over one geo snapshot (pure).

Owns the question "which k stores, among those a filter accepts, are nearest to this point",
answered exactly as brute force does: the same ids in the same order (distance, then id), each
distance the very float `haversine_m(lat, lon, store.lat, store.lon)` gives. It exists because
choosing a pass's locations measured every winning store of every card (~2.7 ms a card with 2 000
stores); re-evaluating 100 000 cards, or one card per ledger event, needs far less than that. Built
once per geo snapshot (the store locations a geo generation holds) and shared by every card of it.

How: stores are bucketed in a latitude/longitude grid whose cell size is fitted to the data; a
query visits rings of cells around the query's cell, nearest ring first, and stops when the
distance any unvisited store can have (a lower bound, below) exceeds the k-th best found, by a
margin over floating-point error. Exactness never depends on the grid's shape, only the speed.

The bound after rings 0..r: an unvisited store lies outside the visited latitude band or outside
the visited longitude window. Outside the band it is at least the latitude gap away (a central angle
is never less than the difference of latitudes). Outside the window, |Δlon| >= D, it is at least
asin(sin(D)·cos(lat)) away: the distance from the query to the meridians at ±D, the boundary of that
region (D capped at 90°, where the region only shrinks). Longitude wraps at the antimeridian (column
indices are taken modulo the grid's width), the band ends at the poles (nothing lies beyond), and
near a pole cos(lat) makes the longitude bound weak, so the window soon covers every column. Where
that gets costly, or the query point or a store is outside the ordinary coordinate ranges, the
query measures every accepted store instead: correctness first, speed where it is safe.
"""

from __future__ import annotations

import bisect
import heapq
import math
from collections.abc import Callable, Collection, Container, Iterable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Final

from geo.distance import EARTH_RADIUS_M, haversine_m

if TYPE_CHECKING:
    from geo.locations import StoreLocation

# A store whose computed haversine_m is at most the k-th best must never be pruned. The bounds are
# true distances; haversine_m's float result can be off from the true value by far less than this
# (worst near antipodes, where asin near 1 loses ~1e-8 rad, i.e. ~0.1 m), and grid-cell assignment
# by float division moves boundaries by ~1e-9 m. One metre covers both with room to spare.
_MARGIN_M: Final = 1.0
_M_PER_DEG: Final = EARTH_RADIUS_M * math.pi / 180.0

# Candidate cell sizes (degrees) the builder picks from; 360 / size is rounded to whole columns.
_CELL_SIZES: Final = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
# Relative cost of looking a cell up versus measuring one store (haversine_m call and compare).
_LOOKUP_COST: Final = 0.15
# A filter given as a collection this small (relative to the index) is measured member by member.
_SMALL_FILTER_SHARE: Final = 0.125
_MEMO_MAX: Final = 4096
# Each coarser grid level has cells this many times wider; a level gives up after this many cell
# lookups (the last one after about as many as there are stores) and the next coarser one starts.
_LEVEL_FACTOR: Final = 8.0
_LEVEL_BUDGET: Final = 400

# (lat, lon, id) of one store in a cell
_Entry = tuple[float, float, str]
# Which ids a query accepts: membership in a container (set, frozenset, dict, keys view) or a predicate.
Accept = Container[str] | Callable[[str], bool]


def _in_range(lat: float, lon: float) -> bool:
    return math.isfinite(lat) and math.isfinite(lon) and -90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0


class NearestIndex:
    """k-nearest stores of one snapshot, exactly as brute force over haversine_m (module doc).

    Immutable after construction: it copies the mapping it is given; `stores` is a read-only view
    of that copy. Ids are the mapping's keys (a value's own `id` is not consulted)."""

    __slots__ = ("_by_id", "_grids", "_members", "_odd", "_programs", "_stores")

    def __init__(self, stores_by_id: Mapping[str, StoreLocation], *, cell_deg: float | None = None) -> None:
        """Index `stores_by_id` (store id -> location). `cell_deg` fixes the grid's cell size in
        degrees (tests use it to force shapes); by default it is fitted to the stores."""
        copied = dict(stores_by_id)
        for store_id, loc in copied.items():
            if math.isnan(loc.lat) or math.isnan(loc.lon):
                # NaN distances have no order: brute force itself would answer by iteration order.
                raise ValueError(f"store location {store_id!r} has a NaN coordinate")
        self._stores: Mapping[str, StoreLocation] = MappingProxyType(copied)
        self._by_id: dict[str, _Entry] = {i: (loc.lat, loc.lon, i) for i, loc in copied.items()}
        gridded = [e for e in self._by_id.values() if _in_range(e[0], e[1])]
        # Out-of-range stores (the store adapters refuse them, but this module is pure) are measured
        # on every query rather than placed in a grid whose bounds assume ordinary coordinates.
        self._odd: tuple[_Entry, ...] = tuple(e for e in self._by_id.values() if not _in_range(e[0], e[1]))
        size = cell_deg if cell_deg is not None else _fit_cell(gridded)
        if not (math.isfinite(size) and size > 0):
            raise ValueError("cell_deg must be a positive number of degrees")
        # Coarser levels catch queries far from every store (a member's area in an empty region),
        # where the finest grid would walk many empty rings before the bound allows a stop.
        levels = [_Grid(size, gridded)]
        while levels[-1].size * _LEVEL_FACTOR <= 90.0 and len(gridded) > 64:
            levels.append(_Grid(levels[-1].size * _LEVEL_FACTOR, gridded))
        self._grids: tuple[_Grid, ...] = tuple(levels)
        programs: dict[str, list[str]] = {}
        for store_id, loc in copied.items():
            if loc.id == store_id:
                programs.setdefault(loc.program, []).append(store_id)
        self._programs: dict[str, tuple[frozenset[str], tuple[str, ...]]] = {
            p: (frozenset(ids), tuple(sorted(ids))) for p, ids in programs.items()
        }
        # A memo of campaign_members, a pure function of this snapshot: the index stays immutable in
        # everything it answers, and a campaign's store list is resolved once, not once per card.
        self._members: dict[tuple[str, tuple[str, ...]], tuple[frozenset[str], tuple[str, ...]]] = {}

    @classmethod
    def of_locations(cls, locations: Iterable[StoreLocation], *, cell_deg: float | None = None) -> NearestIndex:
        """The index of `locations` keyed by their ids; ValueError when an id appears twice."""
        by_id: dict[str, StoreLocation] = {}
        for loc in locations:
            if loc.id in by_id:
                raise ValueError(f"store location {loc.id!r} appears twice")
            by_id[loc.id] = loc
        return cls(by_id, cell_deg=cell_deg)

    @property
    def stores(self) -> Mapping[str, StoreLocation]:
        """The snapshot indexed (read-only); pass it as `stores_by_id` alongside the index."""
        return self._stores

    @property
    def cell_deg(self) -> float:
        """The finest grid's cell size, degrees."""
        return self._grids[0].size

    def __len__(self) -> int:
        return len(self._by_id)

    def program_ids(self, program: str) -> frozenset[str]:
        """Ids of `program`'s stores whose key is their own id (what "every store" of a campaign means)."""
        found = self._programs.get(program)
        return found[0] if found is not None else frozenset()

    def program_ids_sorted(self, program: str) -> tuple[str, ...]:
        """program_ids(program) in id order."""
        found = self._programs.get(program)
        return found[1] if found is not None else ()

    def campaign_members(self, program: str, stores: tuple[str, ...] | None) -> tuple[frozenset[str], tuple[str, ...]]:
        """The ids a campaign of `program` listing `stores` (None: every store) covers in this
        snapshot, as a set and in id order: listed ids of the program's stores, unknown ones and
        other programs' skipped (what geo/locations.campaign_stores keeps)."""
        if stores is None:
            return self._programs.get(program, (frozenset(), ()))
        key = (program, stores)
        found = self._members.get(key)
        if found is None:
            own = self.program_ids(program)
            members = frozenset(i for i in stores if i in own)
            found = (members, tuple(sorted(members)))
            if len(self._members) >= _MEMO_MAX:
                self._members.clear()  # campaigns come and go with snapshots; never grow unbounded
            self._members[key] = found
        return found

    def nearest(
        self, lat: float, lon: float, k: int, accept: Accept, *, within_m: float = math.inf
    ) -> list[tuple[float, str]]:
        """The k (or fewer) accepted stores nearest to (lat, lon) as (haversine_m, id), sorted by
        distance then id: exactly `sorted((haversine_m(lat, lon, s.lat, s.lon), i) for accepted i)[:k]`,
        keeping only distances <= `within_m` when given (a near query's radius; the walk stops there).

        `accept` is a container of ids (ids it holds that the index does not are ignored) or a
        predicate on ids. A NaN query point gives NaN distances, which have no order; the answer is
        then brute force's over the container's own iteration order (or the index's, for a predicate)."""
        if k <= 0 or math.isnan(within_m):
            return []
        allow = accept if callable(accept) else accept.__contains__
        members = None if callable(accept) or not isinstance(accept, Collection) else accept
        if members is not None and (len(members) <= _SMALL_FILTER_SHARE * len(self._by_id) or not _in_range(lat, lon)):
            found = self._measure_members(lat, lon, k, members)
        elif not _in_range(lat, lon):
            found = self._measure_all(lat, lon, k, allow)
        else:
            return self._ring_search(lat, lon, k, allow, within_m)
        return found if within_m == math.inf else [p for p in found if p[0] <= within_m]

    def _measure_members(self, lat: float, lon: float, k: int, members: Iterable[str]) -> list[tuple[float, str]]:
        by_id = self._by_id
        keyed = []
        for store_id in members:
            entry = by_id.get(store_id)
            if entry is not None:
                keyed.append((haversine_m(lat, lon, entry[0], entry[1]), store_id))
        return _smallest(keyed, k)

    def _measure_all(self, lat: float, lon: float, k: int, allow: Callable[[str], bool]) -> list[tuple[float, str]]:
        keyed = [(haversine_m(lat, lon, e[0], e[1]), e[2]) for e in self._by_id.values() if allow(e[2])]
        return _smallest(keyed, k)

    def _ring_search(
        self, lat: float, lon: float, k: int, allow: Callable[[str], bool], within_m: float
    ) -> list[tuple[float, str]]:
        small_budget = min(len(self._by_id) + 64, _LEVEL_BUDGET)
        for n, grid in enumerate(self._grids):
            best: list[tuple[float, str]] = []
            for e in self._odd:
                if allow(e[2]):
                    _offer(best, k, (haversine_m(lat, lon, e[0], e[1]), e[2]))
            last = n == len(self._grids) - 1
            if grid.walk(lat, lon, k, allow, within_m, best, len(self._by_id) + 64 if last else small_budget):
                return [p for p in best if p[0] <= within_m] if within_m != math.inf else best
        # A long walk over sparse cells (near a pole, or a selective predicate) costs more than
        # measuring every store: brute force, which is exact by definition.
        return [p for p in self._measure_all(lat, lon, k, allow) if p[0] <= within_m]


class _Grid:
    """Stores bucketed in cells of `size` degrees: whole columns around the globe, rows pole to pole."""

    __slots__ = ("cells", "ncols", "nrows", "size")

    def __init__(self, size: float, entries: Iterable[_Entry]) -> None:
        self.ncols = max(1, round(360.0 / min(size, 360.0)))
        self.size = 360.0 / self.ncols
        self.nrows = max(1, math.ceil(180.0 / self.size))
        cells: dict[int, list[_Entry]] = {}
        for entry in entries:
            row, col = self.cell_of(entry[0], entry[1])
            cells.setdefault(row * self.ncols + col, []).append(entry)
        self.cells: dict[int, tuple[_Entry, ...]] = {key: tuple(v) for key, v in cells.items()}

    def cell_of(self, lat: float, lon: float) -> tuple[int, int]:
        row = min(self.nrows - 1, max(0, int((lat + 90.0) // self.size)))
        col = int((lon + 180.0) // self.size) % self.ncols  # lon 180 is lon -180: column 0
        return row, col

    def walk(
        self,
        lat: float,
        lon: float,
        k: int,
        allow: Callable[[str], bool],
        within_m: float,
        best: list[tuple[float, str]],
        budget: int,
    ) -> bool:
        """Rings outwards from the query's cell until the bound (module doc) passes the k-th best or
        `within_m`: True, `best` complete; False when more than `budget` cells were looked up first."""
        ncols, nrows, size = self.ncols, self.nrows, self.size
        qrow = self.cell_of(lat, lon)[0]
        raw = int((lon + 180.0) // size)
        # Window edges are measured in the query's own column, so lon 180 when it lands past the
        # last column (wrapped to column 0) is taken as -180, the same meridian.
        qlon = lon - 360.0 if raw >= ncols else lon
        qcol = raw % ncols
        cos_lat = math.cos(math.radians(lat))
        lookups = 0
        r = 0
        while True:
            lookups += self._visit_ring(r, qrow, qcol, lat, lon, k, allow, best)
            if lookups > budget:
                return False
            lat_lo = -90.0 + (qrow - r) * size
            lat_hi = -90.0 + (qrow + r + 1) * size
            south = math.inf if qrow - r <= 0 else (lat - lat_lo) * _M_PER_DEG
            north = math.inf if qrow + r + 1 >= nrows else (lat_hi - lat) * _M_PER_DEG
            if 2 * r + 1 >= ncols:
                east_west = math.inf
            else:
                gap = min(qlon - (-180.0 + (qcol - r) * size), -180.0 + (qcol + r + 1) * size - qlon)
                gap = min(max(gap, 0.0), 90.0)
                east_west = EARTH_RADIUS_M * math.asin(min(1.0, math.sin(math.radians(gap)) * cos_lat))
            bound = min(south, north, east_west)
            if bound == math.inf or bound - _MARGIN_M > within_m:
                return True  # every cell visited, or whatever is left lies beyond within_m
            if len(best) == k and bound - _MARGIN_M > best[-1][0]:
                return True
            r += 1

    def _visit_ring(
        self,
        r: int,
        qrow: int,
        qcol: int,
        lat: float,
        lon: float,
        k: int,
        allow: Callable[[str], bool],
        best: list[tuple[float, str]],
    ) -> int:
        """Offer every accepted store of ring r (cells at Chebyshev distance r); cells looked up."""
        ncols, nrows, cells = self.ncols, self.nrows, self.cells
        full = range(ncols) if 2 * r + 1 >= ncols else [(qcol + d) % ncols for d in range(-r, r + 1)]
        if r == 0:
            sides: list[int] = []
        elif 2 * r - 1 >= ncols:
            sides = []  # every column was covered by the previous ring already
        elif 2 * r + 1 <= ncols:
            sides = [(qcol - r) % ncols, (qcol + r) % ncols]
        else:
            sides = [(qcol + r) % ncols]  # ncols == 2r: -r and +r are one column
        keys: list[int] = []
        for row in range(max(0, qrow - r), min(nrows - 1, qrow + r) + 1):
            if row in (qrow - r, qrow + r):
                keys.extend(row * ncols + c for c in full)
            else:
                keys.extend(row * ncols + c for c in sides)
        for key in keys:
            found = cells.get(key)
            if found is None:
                continue
            for e in found:
                if len(best) == k and abs(e[0] - lat) * _M_PER_DEG - _MARGIN_M > best[-1][0]:
                    continue  # cannot beat the k-th: its latitude gap alone is too far
                if allow(e[2]):
                    _offer(best, k, (haversine_m(lat, lon, e[0], e[1]), e[2]))
        return len(keys)


def _offer(best: list[tuple[float, str]], k: int, item: tuple[float, str]) -> None:
    """Keep `best` the sorted k smallest offered."""
    if len(best) < k:
        bisect.insort(best, item)
    elif item < best[-1]:
        bisect.insort(best, item)
        best.pop()


def _smallest(keyed: list[tuple[float, str]], k: int) -> list[tuple[float, str]]:
    # heapq.nsmallest, as brute force calls it: with NaN distances (unordered) only the same
    # algorithm over the same order gives the same answer.
    return heapq.nsmallest(k, keyed)


def _fit_cell(entries: list[_Entry]) -> float:
    """The candidate cell size with the least modelled query cost for these stores: a query near a
    typical store measures about max(9, 4·10/ρ) cells of ρ stores each, ρ being the mean count of a
    store's own cell (so clusters count as they are, not as the bounding box's average)."""
    if not entries:
        return 30.0
    best_size, best_cost = _CELL_SIZES[-1], math.inf
    for size in _CELL_SIZES:
        counts: dict[tuple[int, int], int] = {}
        for lat, lon, _ in entries:
            key = (int((lat + 90.0) // size), int((lon + 180.0) // size))
            counts[key] = counts.get(key, 0) + 1
        rho = sum(c * c for c in counts.values()) / len(entries)
        cells = max(9.0, 40.0 / rho)
        cost = cells * rho + cells * _LOOKUP_COST
        if cost < best_cost:
            best_size, best_cost = size, cost
    return best_size
