"""Read a user's SMPL / SMPL-X model file (``.npz`` or ``.pkl``) without running any code.

The official files are Python pickles (``SMPL_NEUTRAL.pkl``: a dict of numpy arrays, the
joint regressor as a ``scipy.sparse`` CSC matrix and, in the SMPL 1.0 release, some arrays
wrapped in ``chumpy`` objects) or ``.npz`` archives. Unpickling runs whatever callable the
file names, so a crafted "model file" in the SMPL folder preference (or ``fit-smpl
--model-folder``) could run arbitrary code. Here:

- ``.npz`` is read with ``allow_pickle=False``: an object array is refused.
- ``.pkl`` goes through ``_ModelUnpickler``, which resolves only the names that numpy arrays
  and scalars need; scipy sparse matrices and chumpy objects become inert stand-ins that
  record their state (no scipy or chumpy class is imported or run) and are then turned into
  plain arrays with numpy. Every other name (``os.system``, ``builtins.eval``, ...) is
  refused before anything is called.

``read_model_arrays`` returns a dict of plain, non-object numpy arrays (and strings) that
``smplx`` takes as its data structure, so smplx's own pickle loader never sees the file.
"""

from __future__ import annotations

import codecs
import io
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import MotionError

# The arrays smplx reads for SMPL (all of them required); SMPL-X needs more (checked by smplx).
SMPL_REQUIRED = ("v_template", "shapedirs", "posedirs", "J_regressor", "weights",
                 "kintree_table", "f")  # fmt: skip
MAX_DENSE_ELEMENTS = 2**28  # a sparse matrix made dense: SMPL-X's regressor is 55 x 10,475
CONVERT_HINT = (
    "convert it once, in a Python where you trust the file, to an .npz of plain arrays: "
    "data = pickle.load(open(PKL, 'rb'), encoding='latin1'); np.savez(NPZ, **{k: "
    "np.asarray(v.todense() if hasattr(v, 'todense') else v) for k, v in data.items() if "
    "not isinstance(v, (str, dict))})"
)


class _Recorded:
    """An inert stand-in for an object of an allowed foreign class (scipy sparse, chumpy):
    keeps the class name and the state pickle hands it, runs nothing."""

    kind = "object"

    def __init__(self, name: str = ""):
        self.name = name
        self.state: Any = None
        self.args: tuple = ()

    def __setstate__(self, state: Any) -> None:
        self.state = state


class _Sparse(_Recorded):
    kind = "sparse"


class _Chumpy(_Recorded):
    kind = "chumpy"


def _stand_in(base: type[_Recorded], module: str, name: str) -> type[_Recorded]:
    """A stand-in class for ``module.name`` (pickle calls ``cls.__new__(cls, *args)``)."""

    def new(cls: type, *args: Any) -> _Recorded:
        instance = object.__new__(cls)
        _Recorded.__init__(instance, f"{module}.{name}")
        instance.args = args
        return instance

    return type(name, (base,), {"__new__": new, "__module__": __name__})


def _reconstructor(cls: Any, base: Any, state: Any) -> Any:
    """``copyreg._reconstructor`` for stand-ins only (old pickles' way to make objects)."""
    if not (isinstance(cls, type) and issubclass(cls, _Recorded)):
        raise pickle.UnpicklingError(f"refusing to reconstruct {cls!r}")
    return cls.__new__(cls)


def _multiarray() -> Any:
    """numpy's ``multiarray`` module (``numpy._core`` from numpy 2, ``numpy.core`` before)."""
    try:
        from numpy._core import multiarray
    except ImportError:
        from numpy.core import multiarray
    return multiarray


def _ndarray_reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
    """numpy's ``_reconstruct`` for plain ndarrays only (no subclasses)."""
    if subtype is not np.ndarray:
        raise pickle.UnpicklingError(f"refusing to build an array of type {subtype!r}")
    return _multiarray()._reconstruct(np.ndarray, shape, dtype)


def _frombuffer(buffer: Any, dtype: Any, shape: Any, order: str) -> np.ndarray:
    """numpy's ``_frombuffer`` (pickle protocol 5's arrays) for plain dtypes only."""
    dtype = np.dtype(dtype)
    if dtype.hasobject or not isinstance(buffer, (bytes, bytearray, pickle.PickleBuffer)):
        raise pickle.UnpicklingError(f"refusing an array buffer of dtype {dtype}")
    return np.frombuffer(buffer, dtype=dtype).reshape(shape, order=order)


def _latin1_encode(text: Any, encoding: str = "utf-8") -> bytes:
    """``_codecs.encode`` as protocol-2 pickles use it for bytes (latin-1 text only)."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("refusing _codecs.encode other than latin-1 text")
    return codecs.encode(text, "latin1")


def _numpy_scalar(dtype: Any, data: Any = None) -> Any:
    if not isinstance(dtype, np.dtype) or dtype.hasobject:
        raise pickle.UnpicklingError(f"refusing a numpy scalar of dtype {dtype!r}")
    return _multiarray().scalar(dtype, data)


_NUMPY_MODULES = ("numpy.core.multiarray", "numpy._core.multiarray")
_SPARSE_CLASSES = ("csc_matrix", "csr_matrix", "coo_matrix")
_BUILTINS = {"object": object, "set": set, "frozenset": frozenset}


class _ModelUnpickler(pickle.Unpickler):
    """Resolves only what numpy arrays need; scipy sparse and chumpy become stand-ins."""

    def find_class(self, module: str, name: str) -> Any:
        if module in _NUMPY_MODULES and name == "_reconstruct":
            return _ndarray_reconstruct
        if module in _NUMPY_MODULES and name == "scalar":
            return _numpy_scalar
        if module in ("numpy.core.numeric", "numpy._core.numeric") and name == "_frombuffer":
            return _frombuffer
        if module == "numpy" and name == "ndarray":
            return np.ndarray
        if module == "numpy" and name == "dtype":
            return np.dtype
        if module in ("copy_reg", "copyreg") and name == "_reconstructor":
            return _reconstructor
        if module in ("__builtin__", "builtins") and name in _BUILTINS:
            return _BUILTINS[name]  # plain constructors (protocol 2 writes sets this way)
        if module == "_codecs" and name == "encode":
            return _latin1_encode
        if module.startswith("scipy.sparse") and name in _SPARSE_CLASSES:
            return _stand_in(_Sparse, module, name)
        if module == "chumpy" or module.startswith("chumpy."):
            return _stand_in(_Chumpy, module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def read_model_arrays(path: str | Path) -> dict[str, Any]:
    """The arrays of an SMPL / SMPL-X model file, read without running code.

    Returns name -> numpy array (never of object dtype) or str. Raises ``MotionError``
    naming the file for anything that is not plain model data.
    """
    path = Path(path)
    if path.suffix == ".npz":
        return _read_npz(path)
    if path.suffix == ".pkl":
        return _read_pkl(path)
    raise MotionError(f"{path}: an SMPL model file must be .npz or .pkl")


def _read_npz(path: Path) -> dict[str, Any]:
    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except ValueError as error:  # numpy: "Object arrays cannot be loaded when allow_pickle=False"
        raise MotionError(
            f"{path}: holds Python objects (pickled object arrays), which are not loaded: "
            "save the model's arrays as plain numeric arrays"
        ) from error
    except (OSError, zipfile.BadZipFile, EOFError) as error:
        raise MotionError(f"{path}: not a readable .npz archive ({error})") from error


def _read_pkl(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
        data = _ModelUnpickler(io.BytesIO(raw), encoding="latin1").load()
    except pickle.UnpicklingError as error:
        raise MotionError(
            f"{path}: not loaded: it is not a plain SMPL model pickle ({error}); {CONVERT_HINT}"
        ) from error
    except (OSError, EOFError, ValueError, TypeError, AttributeError, IndexError,
            KeyError, MemoryError, RecursionError) as error:  # fmt: skip
        raise MotionError(
            f"{path}: unreadable model pickle ({type(error).__name__}: {error})"
        ) from error
    if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
        raise MotionError(f"{path}: an SMPL model pickle holds a dict of named arrays")
    arrays = {}
    for key, value in data.items():
        array = _plain(value, f"{path}: {key}")
        if array is not None:
            arrays[key] = array
    missing = [key for key in SMPL_REQUIRED if key not in arrays]
    if missing:
        raise MotionError(
            f"{path}: lacks the arrays {missing} as plain data (derived chumpy objects are not "
            f"evaluated); {CONVERT_HINT}"
        )
    return arrays


def _plain(value: Any, where: str) -> Any:
    """``value`` as a plain array or str, or None for entries smplx never reads (nested dicts,
    derived chumpy expressions, object arrays)."""
    if isinstance(value, str):
        return value
    if isinstance(value, np.ndarray):
        return None if value.dtype.hasobject else value
    if isinstance(value, (int, float, bool, np.generic)) and not isinstance(value, np.object_):
        return np.asarray(value)
    if isinstance(value, _Sparse):
        return _dense(value, where)
    if isinstance(value, _Chumpy):  # a leaf Ch keeps its value as "x"; others are expressions
        state = value.state if isinstance(value.state, dict) else {}
        inner = state.get("x")
        return _plain(inner, where) if isinstance(inner, np.ndarray) else None
    return None


def _dense(matrix: _Sparse, where: str) -> np.ndarray:
    """A pickled scipy CSC / CSR / COO matrix's state as a dense array, with numpy alone."""
    state = matrix.state if isinstance(matrix.state, dict) else {}
    shape = state.get("_shape", state.get("shape"))
    fmt = matrix.name.rsplit(".", 1)[-1][:3]
    try:
        rows, cols = (int(n) for n in shape)
        data = np.asarray(state["data"])
        if data.dtype.hasobject or rows < 0 or cols < 0 or rows * cols > MAX_DENSE_ELEMENTS:
            raise ValueError(f"unusable shape {shape} or dtype {data.dtype}")
        out = np.zeros((rows, cols), dtype=data.dtype)
        if fmt == "coo":
            r, c = np.asarray(state["row"], np.int64), np.asarray(state["col"], np.int64)
        else:
            indices = np.asarray(state["indices"], np.int64)
            indptr = np.asarray(state["indptr"], np.int64)
            outer = cols if fmt == "csc" else rows
            counts = np.diff(indptr)
            if len(indptr) != outer + 1 or (counts < 0).any() or indptr[-1] != len(indices):
                raise ValueError("inconsistent indptr")
            major = np.repeat(np.arange(outer), counts)
            r, c = (indices, major) if fmt == "csc" else (major, indices)
        if len(r) != len(data) or len(c) != len(data):
            raise ValueError("index and data lengths differ")
        if len(data) and (r.min() < 0 or r.max() >= rows or c.min() < 0 or c.max() >= cols):
            raise ValueError("indices outside the matrix")
        np.add.at(out, (r, c), data)
        return out
    except (KeyError, TypeError, ValueError) as error:
        raise MotionError(f"{where}: not a readable sparse matrix ({error})") from error
