"""Import shim that lets lava-nc 0.10.0 / lava-dl 0.6.0 run on CPython 3.11.

Both packages declare Requires-Python <3.11; this machine only has 3.11.
Two things stop a plain import on 3.11, neither of them numerical:

1. CPython 3.11 changed the dataclass "mutable default" check from
   "is it a list/dict/set" to "is its class unhashable". In
   lava/magma/compiler/var_model.py, CoreEncoder/ChipEncoder/AxonEncoder use
   `ByteEncoder()` instances (an eq=True dataclass, hence __hash__ = None) as
   field defaults, which 3.11 rejects with ValueError at import time. We make
   `ByteEncoder` (and only it) hashable by decorating it with
   unsafe_hash=True while var_model is imported. These encoders describe
   Loihi hardware (NC) spike-routing registers; the CPU simulation
   (Loihi2SimCfg) never reads them, and the behaviour (one shared default
   instance) is exactly what 3.10 gave.

2. lava.lib.dl.slayer imports its object_detection subpackage eagerly, which
   needs torchvision and cv2. No torchvision wheel matches the system torch
   (2.15) and installing one would pull a second torch; object detection is
   not used here, so an empty stub module stands in for it.

Import this module before any `lava` import.
"""
import dataclasses
import sys
import types

_orig_dataclass = dataclasses.dataclass


def _dataclass(cls=None, /, **kw):
    def wrap(c):
        if c.__name__ == "ByteEncoder" and c.__module__ == "lava.magma.compiler.var_model":
            kw.setdefault("unsafe_hash", True)
        return _orig_dataclass(c, **kw)
    if cls is None:
        return wrap
    return wrap(cls)


dataclasses.dataclass = _dataclass
try:
    import lava.magma.compiler.var_model  # noqa: F401
finally:
    dataclasses.dataclass = _orig_dataclass

_od = "lava.lib.dl.slayer.object_detection"
if _od not in sys.modules:
    sys.modules[_od] = types.ModuleType(_od)
