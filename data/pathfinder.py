"""Pathfinder (LRA, 32x32): a generator faithful in spirit to Linsley et al.'s, and a loader of LRA's layout.

Generator (own code; documented as *in the spirit of* drewlinsley/pathfinder `snakes2.py` with LRA's
32x32 parameters, not a pixel-exact copy):
  * a 32x32 canvas (1 px padding); two target contours start `seed_distance` = 7 px apart near the
    centre (as in the original, the first start point lies at least 2*seed_distance from the border);
  * a contour is a chain of `contour_length` dashes ("paddles") of `paddle_length` = 2 px separated by
    `paddle_margin` = 1 px gaps; each dash turns from the previous by an angle drawn with weight
    cos^2(min(|delta| * continuity, pi/2)) (continuity 1.0), among directions that stay inside the
    canvas, keep `min_separation` px from every other contour and do not cross the contour itself;
  * distractors: `20 // distractor_length` short contours of `distractor_length = contour_length // 3`
    dashes, placed wherever they fit (like the original, a distractor that does not fit is dropped);
  * two circular markers (radius 1.5 px): one at the start of target contour i, the other at the end
    of the same contour (label 1, connected) or of the other target contour (label 0);
  * rendered with 4x4 supersampling (anti-aliased), dash width `paddle_width` = 1 px, to uint8 0..255;
  * every image is checked on its pixels before it is kept: in the foreground (coverage >= 1/4),
    linking pixels at most 2 apart (Chebyshev: bridging a dash gap of one empty pixel), the two
    markers lie in one component exactly when the label is 1. Images that fail are redrawn.
  * labels are exactly balanced (a seeded permutation of 0/1), the whole set is determined by `seed`.
  Difficulties as in LRA: 'easy' = curv_baseline (6 dashes), 'intermediate' = curv_contour_length_9,
  'hard' = curv_contour_length_14 (LRA's Pathfinder task uses pathfinder32 'hard' in most follow-ups).

Layout (LRA's lra_release/pathfinder32/):
  <root>/<curv_baseline|curv_contour_length_9|curv_contour_length_14>/imgs/<n>/sample_<k>.png
  <root>/<...>/metadata/<n>.npy   (despite the name: text, one line per image,
      'imgs/<n> sample_<k>.png <k> <label> <continuity> <contour_length> <distractor_length>
       <paddle_length> <paddle_thickness> <paddle_margin> <n_contrasts>'; LRA reads fields 0, 1, 3)
Splits as LRA: the images in metadata order (files by number, lines in order), 80 % / 10 % / 10 %.

Citation: J. Kim*, D. Linsley*, K. Thakkar, T. Serre, 'Disentangling neural mechanisms for perceptual
grouping', ICLR 2020; Linsley et al., NeurIPS 2018; LRA: Tay et al., ICLR 2021.
"""
from __future__ import annotations

import os
import re
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .core import DataError, Dataset, cached_dataset, class_counts, limit_index, require_dir

DIFFICULTIES = {"easy": ("curv_baseline", 6), "intermediate": ("curv_contour_length_9", 9),
                "hard": ("curv_contour_length_14", 14)}
CLASSES = ["disconnected", "connected"]
CITATION = ("J. Kim, D. Linsley, K. Thakkar, T. Serre, 'Disentangling neural mechanisms for perceptual "
            "grouping', ICLR 2020; LRA: Y. Tay et al., 'Long Range Arena', ICLR 2021")
LAYOUT = """\
  <root>/<curv_baseline|curv_contour_length_9|curv_contour_length_14>/imgs/<n>/sample_<k>.png  (32x32, mode L)
  <root>/<...>/metadata/<n>.npy  (text lines 'imgs/<n> sample_<k>.png <k> <label 0/1> ...')"""
SS = 4  # supersampling factor of the renderer


@dataclass(frozen=True)
class PathfinderParams:
    size: int = 32
    padding: int = 1
    contour_length: int = 14
    paddle_length: float = 2.0
    paddle_margin: float = 1.0
    paddle_width: float = 1.0
    marker_radius: float = 1.5
    seed_distance: float = 7.0
    continuity: float = 1.0
    min_separation: float = 3.0
    distractor_length: int | None = None     # default contour_length // 3
    num_distractors: int | None = None       # default 20 // distractor_length

    @property
    def d_len(self) -> int:
        return self.distractor_length if self.distractor_length is not None else max(1, self.contour_length // 3)

    @property
    def n_distr(self) -> int:
        return self.num_distractors if self.num_distractors is not None else 20 // self.d_len


def params_for(difficulty: str = "hard", **kw) -> PathfinderParams:
    if difficulty not in DIFFICULTIES:
        raise DataError(f"difficulty must be one of {list(DIFFICULTIES)}, got {difficulty!r}")
    return PathfinderParams(contour_length=DIFFICULTIES[difficulty][1], **kw)


# --------------------------------------------------------------------------------------------------
# generator
# --------------------------------------------------------------------------------------------------

class _Canvas:
    """Geometry state: dashes per contour and a supersampled exclusion-count raster."""

    def __init__(self, p: PathfinderParams):
        self.p = p
        n = p.size * SS
        self.total = np.zeros((n, n), dtype=np.int16)
        self.own: list[np.ndarray] = []
        self.dashes: list[list[tuple[np.ndarray, np.ndarray]]] = []
        self.dash_pts: list[list[np.ndarray]] = []
        self._older: list = []
        r = int(np.ceil(p.min_separation * SS))
        yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
        self.disc = (yy ** 2 + xx ** 2 <= (p.min_separation * SS) ** 2).astype(np.int16)
        self.r = r

    def new_contour(self) -> int:
        self.own.append(np.zeros_like(self.total))
        self.dashes.append([])
        self.dash_pts.append([])
        self._older.append(None)
        return len(self.dashes) - 1

    @staticmethod
    def points(a, b, step=0.25):
        k = max(2, int(np.ceil(np.hypot(*(b - a)) / step)) + 1)
        t = np.linspace(0.0, 1.0, k)[:, None]
        return a[None, :] * (1 - t) + b[None, :] * t

    def inside(self, pts) -> np.ndarray:
        """pts (..., P, 2) -> (...,) all points inside the padded canvas."""
        lo, hi = self.p.padding + 0.5, self.p.size - self.p.padding - 0.5
        return np.all((pts >= lo) & (pts <= hi), axis=(-1, -2))

    def free(self, cid: int, pts) -> np.ndarray:
        """pts (..., P, 2) -> (...,): points keep min_separation from other contours and
        paddle_margin + 0.5 px from this contour's dashes before the last one."""
        pts = np.asarray(pts, dtype=float)
        ij = np.floor(pts * SS).astype(int)
        n = self.total.shape[0]
        ok = np.all((ij >= 0) & (ij < n), axis=(-1, -2))
        ijc = np.clip(ij, 0, n - 1)
        other = self.total[ijc[..., 0], ijc[..., 1]] - self.own[cid][ijc[..., 0], ijc[..., 1]]
        ok &= ~np.any(other > 0, axis=-1)
        q = self.older_points(cid)
        if q is not None:
            d2 = ((pts[..., :, None, :] - q) ** 2).sum(-1)
            ok &= d2.min(axis=(-1, -2)) >= (self.p.paddle_margin + 0.5) ** 2
        return ok

    def stamp(self, cid: int, pts):
        n = self.total.shape[0]
        r = self.r
        for y, x in np.unique(np.floor(pts * SS).astype(int), axis=0)[::2]:
            y0, y1, x0, x1 = max(0, y - r), min(n, y + r + 1), max(0, x - r), min(n, x + r + 1)
            d = self.disc[y0 - (y - r):y1 - (y - r), x0 - (x - r):x1 - (x - r)]
            region = self.own[cid][y0:y1, x0:x1]
            add = d & (region == 0)
            region |= add
            self.total[y0:y1, x0:x1] += add

    def add_dash(self, cid: int, a, b):
        self.dashes[cid].append((a, b))
        pts = self.points(a, b)
        self.dash_pts[cid].append(pts)
        self._older[cid] = None
        self.stamp(cid, pts)

    def older_points(self, cid: int):
        """Sample points of this contour's dashes except the last one (None if there are none)."""
        if len(self.dash_pts[cid]) < 2:
            return None
        if self._older[cid] is None:
            self._older[cid] = np.concatenate(self.dash_pts[cid][:-1])
        return self._older[cid]

    def stamp_disc(self, cid: int, c, radius):
        """Reserve a disc (a marker) for contour cid."""
        ang = np.linspace(0, 2 * np.pi, 16, endpoint=False)
        pts = np.concatenate([c[None, :], c[None, :] + radius * np.stack([np.sin(ang), np.cos(ang)], 1)])
        self.stamp(cid, pts)


def _unit(theta):
    return np.array([np.sin(theta), np.cos(theta)])


def _grow(cv: _Canvas, cid: int, start, theta, n_dashes: int, rng, end_margin: float = 0.0) -> tuple | None:
    """Grow a contour of n_dashes from `start` with initial direction theta; returns (start, end) or None."""
    p = cv.p
    a = np.asarray(start, dtype=float)
    b = a + p.paddle_length * _unit(theta)
    pts = cv.points(a, b)
    if not (cv.inside(pts) and cv.free(cid, pts)):
        return None
    cv.add_dash(cid, a, b)
    deltas = np.deg2rad(np.arange(-90, 91, 10, dtype=float)) / max(p.continuity, 1e-6)
    weights = np.cos(np.minimum(np.abs(deltas) * p.continuity, np.pi / 2)) ** 2
    keep = weights > 1e-12
    deltas, weights = deltas[keep], weights[keep]
    t = np.linspace(0.0, 1.0, int(np.ceil(p.paddle_length / 0.25)) + 1)[None, :, None]
    for _ in range(n_dashes - 1):
        th = theta + deltas                                          # (K,)
        u = np.stack([np.sin(th), np.cos(th)], axis=1)               # (K, 2)
        a2 = b[None, :] + p.paddle_margin * u
        b2 = a2 + p.paddle_length * u
        pts = a2[:, None, :] * (1 - t) + b2[:, None, :] * t          # (K, P, 2)
        ok = cv.inside(pts)
        if end_margin and _ == n_dashes - 2:  # the last dash ends where a marker fits inside the padding
            lo, hi = p.padding + end_margin, p.size - p.padding - end_margin
            ok &= np.all((b2 >= lo) & (b2 <= hi), axis=1)
        if ok.any():
            ok[ok] = cv.free(cid, pts[ok])
        if not ok.any():
            return None
        w = weights * ok
        k = int(rng.choice(len(w), p=w / w.sum()))
        theta = th[k]
        cv.add_dash(cid, a2[k], b2[k])
        b = b2[k]
    return np.asarray(start, dtype=float), b


def _render(dashes, markers, p: PathfinderParams) -> np.ndarray:
    n = p.size * SS
    img = np.zeros((n, n), dtype=bool)
    half = p.paddle_width * SS / 2
    for a, b in dashes:
        a, b = a * SS, b * SS
        y0 = max(0, int(np.floor(min(a[0], b[0]) - half - 1)))
        y1 = min(n, int(np.ceil(max(a[0], b[0]) + half + 1)))
        x0 = max(0, int(np.floor(min(a[1], b[1]) - half - 1)))
        x1 = min(n, int(np.ceil(max(a[1], b[1]) + half + 1)))
        yy, xx = np.mgrid[y0:y1, x0:x1] + 0.5
        d = b - a
        t = np.clip(((yy - a[0]) * d[0] + (xx - a[1]) * d[1]) / max(d @ d, 1e-12), 0, 1)
        dist2 = (yy - a[0] - t * d[0]) ** 2 + (xx - a[1] - t * d[1]) ** 2
        img[y0:y1, x0:x1] |= dist2 <= half ** 2
    yy, xx = np.mgrid[0:n, 0:n] + 0.5
    for c in markers:
        img |= (yy - c[0] * SS) ** 2 + (xx - c[1] * SS) ** 2 <= (p.marker_radius * SS) ** 2
    cov = img.reshape(p.size, SS, p.size, SS).mean(axis=(1, 3))
    return np.round(cov * 255).astype(np.uint8)


def pixel_components(img: np.ndarray, threshold: int = 64, link: int = 2) -> np.ndarray:
    """Component label per pixel (-1 background): foreground = img >= threshold, pixels at Chebyshev
    distance <= link are linked (link=2 bridges a one-pixel gap between dashes)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    ys, xs = np.nonzero(img >= threshold)
    lab = np.full(img.shape, -1, dtype=np.int64)
    if len(ys) == 0:
        return lab
    dy = np.abs(ys[:, None] - ys[None, :])
    dx = np.abs(xs[:, None] - xs[None, :])
    i, j = np.nonzero(np.maximum(dy, dx) <= link)
    g = coo_matrix((np.ones(len(i)), (i, j)), shape=(len(ys), len(ys)))
    _, comp = connected_components(g, directed=False)
    lab[ys, xs] = comp
    return lab


def markers_connected(img: np.ndarray, m1, m2) -> bool:
    lab = pixel_components(img)
    a = lab[int(m1[0]), int(m1[1])]
    b = lab[int(m2[0]), int(m2[1])]
    return bool(a >= 0 and a == b)


def _one_image(label: int, p: PathfinderParams, rng: np.random.Generator, max_tries: int = 200):
    for _ in range(max_tries):
        cv = _Canvas(p)
        sd = p.seed_distance
        lo, hi = 2 * sd, p.size - 2 * sd
        s0 = rng.uniform(lo, hi, size=2)
        phi = rng.uniform(0, 2 * np.pi)
        s1 = s0 + sd * _unit(phi)
        ca, cb = cv.new_contour(), cv.new_contour()
        # reserve both start points (marker sites) for their own contour
        cv.stamp_disc(ca, s0, p.marker_radius)
        cv.stamp_disc(cb, s1, p.marker_radius)
        ta = rng.uniform(0, 2 * np.pi)
        tb = rng.uniform(0, 2 * np.pi)
        # grow the two targets one after the other (the original extends them in lockstep)
        ra = _grow(cv, ca, s0, ta, p.contour_length, rng, end_margin=p.marker_radius)
        if ra is None:
            continue
        rb = _grow(cv, cb, s1, tb, p.contour_length, rng, end_margin=p.marker_radius)
        if rb is None:
            continue
        ends = [ra, rb]
        i = int(rng.integers(2))
        m_origin = ends[i][0]
        m_term = ends[i][1] if label == 1 else ends[1 - i][1]
        cv.stamp_disc(ca, ra[1], p.marker_radius + 0.5)
        cv.stamp_disc(cb, rb[1], p.marker_radius + 0.5)
        for _d in range(p.n_distr):
            for _t in range(20):
                cid = cv.new_contour()
                start = rng.uniform(p.padding + 1, p.size - p.padding - 1, size=2)
                if not cv.free(cid, start[None, :])[()]:
                    _rollback(cv)
                    continue
                if _grow(cv, cid, start, rng.uniform(0, 2 * np.pi), p.d_len, rng) is None:
                    _rollback(cv)
                    continue
                break
        dashes = [d for ds in cv.dashes for d in ds]
        img = _render(dashes, [m_origin, m_term], p)
        if markers_connected(img, m_origin, m_term) != bool(label):
            continue
        return img, {"origin": m_origin, "terminal": m_term,
                     "n_distractors": len(cv.dashes) - 2}
    raise DataError(f"Pathfinder: could not draw an image in {max_tries} tries with {p}")


def _rollback(cv: _Canvas):
    """Remove the last contour (a distractor that did not fit)."""
    own = cv.own.pop()
    cv.total -= own
    cv.dashes.pop()
    cv.dash_pts.pop()
    cv._older.pop()


CHUNK = 500  # images per independently seeded chunk: the unit of parallel generation


def _chunk(args) -> np.ndarray:
    labels, seed, k, p = args
    rng = np.random.default_rng([seed, k])   # chunk k's own stream: the set does not depend on the workers
    return np.stack([_one_image(int(lab), p, rng)[0] for lab in labels])


def generate_pathfinder(n: int, seed: int = 0, difficulty: str = "hard", params: PathfinderParams | None = None,
                        progress: bool = True, workers: int | None = None, start: int = 0,
                        stop: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Images start..stop-1 (default all n) of the n-image set: (m, 32, 32) uint8 and labels (m,) int64.

    The set is determined by `seed` and its labels are exactly balanced over all n. Images are drawn in
    chunks of CHUNK, each from its own seeded stream, so any slice (a split) can be generated without
    the rest, and `workers` processes (default: every core, for more than one chunk) give the same
    images as one.
    """
    stop = n if stop is None else stop
    if not 0 <= start <= stop <= n:
        raise DataError(f"generate_pathfinder: need 0 <= start <= stop <= n, got start={start} stop={stop} n={n}")
    p = params or params_for(difficulty)
    labels = np.random.default_rng(seed).permutation(np.arange(n) % 2).astype(np.int64)
    k0, k1 = start // CHUNK, -(-stop // CHUNK)
    jobs = [(labels[k * CHUNK:(k + 1) * CHUNK], seed, k, p) for k in range(k0, k1)]
    workers = min(workers or os.cpu_count() or 1, max(len(jobs), 1))
    bar = None
    if progress and stop - start >= 2000:
        from tqdm import tqdm
        bar = tqdm(total=len(jobs) * CHUNK, desc=f"generating Pathfinder ({workers} processes)", unit="img",
                   leave=False)
    parts = [np.zeros((0, p.size, p.size), dtype=np.uint8)]
    with ProcessPoolExecutor(workers) if workers > 1 else nullcontext() as pool:
        for part in (pool.map(_chunk, jobs) if pool else map(_chunk, jobs)):
            parts.append(part)
            if bar is not None:
                bar.update(len(part))
    if bar is not None:
        bar.close()
    off = start - k0 * CHUNK
    return np.concatenate(parts)[off:off + stop - start], labels[start:stop]


def write_pathfinder_files(root: Path | str, imgs: np.ndarray, labels: np.ndarray, difficulty: str = "hard",
                           per_folder: int = 1000, params: PathfinderParams | None = None) -> Path:
    """Write images and metadata in LRA's layout under root/<difficulty folder>/; returns that folder."""
    from PIL import Image
    p = params or params_for(difficulty)
    base = Path(root) / DIFFICULTIES[difficulty][0]
    (base / "metadata").mkdir(parents=True, exist_ok=True)
    lines: dict[int, list[str]] = {}
    for k, (img, lab) in enumerate(zip(imgs, labels, strict=True)):
        b, j = divmod(k, per_folder)
        d = base / "imgs" / str(b)
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.asarray(img, dtype=np.uint8), mode="L").save(d / f"sample_{j}.png", optimize=True)
        lines.setdefault(b, []).append(
            f"imgs/{b} sample_{j}.png {j} {int(lab)} {p.continuity} {p.contour_length} {p.d_len} "
            f"{p.paddle_length:g} {p.paddle_width:g} {p.paddle_margin:g} 1")
    for b, ls in lines.items():
        (base / "metadata" / f"{b}.npy").write_text("\n".join(ls) + "\n")
    return base


# --------------------------------------------------------------------------------------------------
# loader
# --------------------------------------------------------------------------------------------------

def _read_metadata(path: Path) -> list[list[str]]:
    data = path.read_bytes()
    if data.startswith(b"\x93NUMPY"):  # a real .npy (np.save of the string array): accept it too
        try:
            import io
            arr = np.load(io.BytesIO(data), allow_pickle=False)
        except ValueError as e:
            raise DataError(f"{path}: unreadable .npy metadata ({e})") from None
        return [[str(v) for v in row] for row in np.atleast_2d(arr)]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise DataError(f"{path}: metadata is neither text lines nor a .npy array") from None
    return [ln.split() for ln in text.splitlines() if ln.strip()]


def _meta_key(p: Path):
    m = re.match(r"^(\d+)\.npy$", p.name)
    return (0, int(m.group(1))) if m else (1, p.name)


def load_pathfinder(root: Path | str | None = None, split: str = "train", difficulty: str = "hard",
                    limit: int | None = None, skip_empty: bool = False, seed: int = 0, n: int | None = None,
                    cache: bool = True) -> Dataset:
    """Pathfinder32 as (N, 1024) uint8 pixels, y 1 = connected.

    root       LRA layout (see LAYOUT), or None to generate: `n` images (default LRA's 200,000; with
               `limit`, just that many for the split) with `seed`, split 80/10/10 like LRA.
    skip_empty LRA's pipeline drops empty (zero-byte) image files; here they raise DataError unless
               skip_empty=True, which drops them and counts them in meta['n_skipped_empty'].
    """
    if split not in ("train", "val", "test"):
        raise DataError(f"split must be 'train', 'val' or 'test', got {split!r}")
    if difficulty not in DIFFICULTIES:
        raise DataError(f"difficulty must be one of {list(DIFFICULTIES)}, got {difficulty!r}")
    folder, clen = DIFFICULTIES[difficulty]
    frac = {"train": (0.0, 0.8), "val": (0.8, 0.9), "test": (0.9, 1.0)}[split]
    if root is None:
        if limit is not None and n is None:
            # generate just what is asked: a split-specific seed keeps the splits distinct
            s = seed * 3 + ("train", "val", "test").index(split)

            def build_limited() -> Dataset:
                imgs, y = generate_pathfinder(limit, seed=s, difficulty=difficulty)
                ids = [f"generated:seed{s}:{i}" for i in range(limit)]
                return _pf_dataset(imgs.reshape(len(y), -1), y, ids, f"generated (seed {s})", split, difficulty,
                                   limit, 0)
            key = {"gen": 2, "seed": s, "n": limit, "difficulty": difficulty, "per_split": True, "chunk": CHUNK}
            return cached_dataset("pathfinder", key, build_limited, use_cache=cache and limit >= 100)
        total = n if n is not None else 200000
        i0, i1 = int(round(frac[0] * total)), int(round(frac[1] * total))

        def build() -> Dataset:
            imgs, y = generate_pathfinder(total, seed=seed, difficulty=difficulty, start=i0, stop=i1)
            return _pf_dataset(imgs.reshape(i1 - i0, -1), y, [f"generated:seed{seed}:{i}" for i in range(i0, i1)],
                               f"generated (seed {seed}, {total} images)", split, difficulty, None, 0)
        ds = cached_dataset("pathfinder", {"gen": 2, "seed": seed, "n": total, "difficulty": difficulty,
                                           "split": split, "chunk": CHUNK}, build, use_cache=cache)
        return ds.subset(limit_index(len(ds), limit), limit=limit) if limit is not None else ds

    root = Path(root)
    base = root / folder if (root / folder).is_dir() else root
    require_dir(base, "Pathfinder", LAYOUT)
    mdir = base / "metadata"
    if not mdir.is_dir():
        raise DataError(f"missing metadata folder {mdir}; expected layout:\n{LAYOUT}")
    files = sorted((f for f in mdir.iterdir() if f.suffix == ".npy"), key=_meta_key)
    if not files:
        raise DataError(f"{mdir}: no metadata/<n>.npy files; expected layout:\n{LAYOUT}")
    entries = []
    for f in files:
        for i, row in enumerate(_read_metadata(f), 1):
            if len(row) < 4:
                raise DataError(f"{f}:{i}: expected at least 4 fields (subpath file nimg label), got {len(row)}")
            if row[3] not in ("0", "1"):
                raise DataError(f"{f}:{i}: bad label {row[3]!r} (must be 0 or 1)")
            entries.append((f"{row[0]}/{row[1]}", int(row[3]), f"{f.name}:{i}"))
    N = len(entries)
    i0, i1 = int(round(frac[0] * N)), int(round(frac[1] * N))
    entries = entries[i0:i1]
    entries = [entries[i] for i in limit_index(len(entries), limit)]
    from .image import decode_image
    imgs, y, ids, skipped = [], [], [], 0
    for rel, lab, where in entries:
        path = base / rel
        if not path.is_file():
            raise DataError(f"{path}: listed in {where} but missing")
        if path.stat().st_size == 0:
            if skip_empty:
                skipped += 1
                continue
            raise DataError(f"{path}: empty image file (LRA's pipeline drops these: pass skip_empty=True)")
        imgs.append(decode_image(path, "L", (32, 32)).reshape(-1))
        y.append(lab)
        ids.append(rel)
    if not imgs:
        raise DataError(f"{base}: no images in split {split!r}")
    return _pf_dataset(np.stack(imgs), np.asarray(y, dtype=np.int64), ids, str(base.resolve()), split,
                       difficulty, limit, skipped)


def _pf_dataset(x, y, ids, source, split, difficulty, limit, skipped) -> Dataset:
    meta = {"task": "pathfinder", "source": source, "split": split, "difficulty": difficulty,
            "folder": DIFFICULTIES[difficulty][0], "n": len(y), "class_counts": class_counts(y, CLASSES),
            "pixels": "uint8 grayscale 32x32, row-major", "split_rule": "metadata order, 80/10/10 (LRA)",
            "n_skipped_empty": skipped, "limit": limit, "citation": CITATION}
    return Dataset(x.astype(np.uint8), y, np.full(len(y), 1024, dtype=np.int64), list(CLASSES),
                   np.asarray(ids, dtype=str), meta)
