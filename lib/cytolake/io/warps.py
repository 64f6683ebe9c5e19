"""A brain's transform from its own 3D space to the reference space (MNI), read with nitransforms.

Direction, exactly: `map_points(warp, x)` takes points `x` in the brain's own space (RAS mm, where the
section affines put the pixels) and returns their MNI positions. A displacement field is therefore a
grid over the BRAIN's space whose vectors d give `mni = x + d(x)` (cubic-spline interpolated between
grid points, nitransforms' `DenseFieldTransform.map`). In ITK/ANTs terms a transform maps points of
its fixed space to its moving space, so the file wanted is the one whose fixed space is the brain:
after `antsRegistration` with MNI fixed and the brain moving, that is the inverse
(`InverseComposite.h5`, or `[0GenericAffine.mat,1]` followed by `1InverseWarp.nii.gz`); after FSL
`fnirt --ref=MNI --in=brain`, the field of `invwarp -w warp -r brain` (relative displacements).

File conventions are nitransforms' (`io.itk`, `io.fsl`, `io.afni`): ITK fields are 5-D NIfTI
(X, Y, Z, 1, 3) in LPS, converted to RAS by negating x and y; FSL fields are 4-D (X, Y, Z, 3)
with x negated; ITK `.h5` composites and `.mat`/`.txt`/`.tfm` affines are read as such.
Points that fall outside a displacement field's grid are an error here, never silently unwarped.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from cytolake.io.files import content_hash, signature, special_file

FORMATS = ("itk", "fsl", "afni")
_LINEAR_SUFFIXES = (".mat", ".txt", ".tfm")


class WarpError(ValueError):
    """A warp that cannot be used; the message names the file and the problem."""


def _nifti(path: Path) -> bool:
    return path.name.endswith((".nii", ".nii.gz"))


def infer_format(path: str | Path, fmt: str | None) -> str:
    """The warp's format: the one named, else `itk` for .h5 and ITK affines, `itk` for a 5-D NIfTI field
    and `fsl` for a 4-D one. AFNI fields (5-D, like ITK's) must be named."""
    path = Path(path)
    if (kind := special_file(path)) is not None:
        raise WarpError(f"{path}: not a regular file ({kind}); not opened")
    if fmt:
        if fmt not in FORMATS:
            raise WarpError(f"{path}: warp_format {fmt!r} is not one of {', '.join(FORMATS)}")
        return fmt
    if path.suffix in (".h5", *_LINEAR_SUFFIXES):
        return "itk"
    if _nifti(path):
        import nibabel as nib

        if not path.exists():
            raise WarpError(f"{path}: warp file not found")
        try:
            ndim = len(nib.load(path).shape)
        except Exception as e:  # nibabel raises several types for a bad header
            raise WarpError(f"{path}: not a readable NIfTI displacement field ({type(e).__name__}: {e})") from None
        if ndim in (4, 5):
            return "itk" if ndim == 5 else "fsl"
        raise WarpError(f"{path}: a displacement field is 4-D (FSL) or 5-D (ITK), this image is {ndim}-D")
    raise WarpError(f"{path}: unknown warp file type (expected .nii/.nii.gz field, .h5 composite or "
                    f".mat/.txt/.tfm affine); name warp_format")


def _load(path: Path, fmt: str):
    import nitransforms as nt
    from nitransforms.linear import load as load_linear
    from nitransforms.manip import TransformChain
    from nitransforms.nonlinear import DenseFieldTransform

    if not path.exists():
        raise WarpError(f"{path}: warp file not found")
    try:
        if path.suffix == ".h5":
            return _finite(TransformChain.from_filename(path, fmt="itk"), path)
        if path.suffix in _LINEAR_SUFFIXES:
            return _finite(load_linear(path, fmt=fmt), path)
        if _nifti(path):
            xfm = DenseFieldTransform.from_filename(path, fmt=fmt)
            if xfm.ndim != 3:
                raise WarpError(f"{path}: a {xfm.ndim}-D field; a 3-D displacement field is needed")
            return _finite(xfm, path)
    except WarpError:
        raise
    except (nt.base.TransformError, OSError, ValueError, TypeError, KeyError) as e:
        raise WarpError(f"{path}: cannot read the {fmt} warp ({type(e).__name__}: {e})") from None
    raise WarpError(f"{path}: unknown warp file type")


def _finite(xfm, path: Path):
    """`xfm`, when every displacement and affine value in it is finite; else WarpError naming the file. One NaN
    in a field would not stay local: the cubic-spline prefilter spreads it over the whole field, and
    nitransforms then leaves every point where it was (an identity warp, without a word)."""
    from nitransforms.nonlinear import DenseFieldTransform

    for step in _steps(xfm):
        dense = isinstance(step, DenseFieldTransform)
        values = step._field if dense else getattr(step, "matrix", None)  # the field as loaded: positions + deltas
        if values is None:
            continue
        bad = ~np.isfinite(values)
        if not bad.any():
            continue
        if dense:
            voxels = bad.reshape(*bad.shape[:3], -1).any(axis=-1)
            first = np.argwhere(voxels)[0].tolist()
            raise WarpError(f"{path}: the displacement field holds NaN or infinite values at {int(voxels.sum())} "
                            f"voxel(s) (first at voxel {first})")
        raise WarpError(f"{path}: the affine holds NaN or infinite values")
    return xfm


@lru_cache(maxsize=4)
def _cached(path: str, fmt: str, size: int, mtime_ns: int):
    return _load(Path(path), fmt)


def load_warp(path: str | Path, fmt: str | None = None):
    """The warp as a nitransforms transform, cached per file version (one load per Python worker)."""
    path = Path(path)
    if not path.exists():
        raise WarpError(f"{path}: warp file not found")
    fmt = infer_format(path, fmt)
    try:
        size, mtime = signature(path)
    except OSError:
        raise WarpError(f"{path}: warp file not found") from None
    return _cached(str(path), fmt, size, mtime)


@lru_cache(maxsize=16)
def _hash(path: str, size: int, mtime_ns: int) -> str:
    return content_hash(path)


def warp_hash(path: str | Path) -> str:
    """Content hash of the warp file (cached per file version)."""
    try:
        size, mtime = signature(path)
    except OSError:
        raise WarpError(f"{path}: warp file not found") from None
    return _hash(str(path), size, mtime)


def _steps(xfm) -> list:
    from nitransforms.manip import TransformChain

    return list(xfm.transforms) if isinstance(xfm, TransformChain) else [xfm]


def map_points(xfm, xyz: np.ndarray, where: str = "warp") -> np.ndarray:
    """Brain-space points (n, 3) in mm -> MNI mm, all at once. Raises WarpError naming `where` when a point
    falls outside a displacement field's grid (nitransforms would leave it unmoved)."""
    from nitransforms.nonlinear import DenseFieldTransform

    pts = np.asarray(xyz, np.float64).reshape(-1, 3)
    if not len(pts):
        return pts
    for step in _steps(xfm):
        if isinstance(step, DenseFieldTransform):
            ref = step.reference
            ijk = np.c_[pts, np.ones(len(pts))] @ np.linalg.inv(ref.affine).T
            outside = np.any((ijk[:, :3] < -1e-6) | (ijk[:, :3] > np.asarray(ref.shape) - 1 + 1e-6), axis=1)
            if outside.any():
                lo = ref.affine @ np.r_[0, 0, 0, 1]
                hi = ref.affine @ np.r_[np.asarray(ref.shape) - 1, 1]
                raise WarpError(f"{where}: {int(outside.sum())} of {len(pts)} points lie outside the displacement "
                                f"field's grid (first at {np.round(pts[outside][0], 1).tolist()} mm; the grid spans "
                                f"{np.round(np.minimum(lo, hi)[:3], 1).tolist()}..{np.round(np.maximum(lo, hi)[:3], 1).tolist()} mm)")
        pts = np.asarray(step.map(pts), np.float64).reshape(-1, 3)
    if not np.isfinite(pts).all():
        raise WarpError(f"{where}: the warp gives non-finite positions")
    return pts


def warp_points(warp_uri: str | None, warp_format: str | None, xyz: np.ndarray) -> np.ndarray:
    """`xyz` through the warp at `warp_uri` (unchanged when there is none): what tiling and graphs call."""
    if not warp_uri:
        return np.asarray(xyz, np.float64)
    return map_points(load_warp(warp_uri, warp_format), xyz, where=str(warp_uri))
