"""A PEP 517 backend for a pure-Python package, standard library only.

It builds the wheel of runway_worker (the package directory beside this
folder, copied as it is) and an sdist, which is all `pip install
clients/python` asks for. Kept tiny on purpose: setuptools would have to be
downloaded into pip's isolated build environment, and CI machines are
offline.
"""

import base64
import hashlib
import io
import os
import tarfile
import zipfile

NAME = "runway_worker"
DIST = "runway_worker"
VERSION = "0.1.0"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TAG = "py3-none-any"

METADATA = f"""Metadata-Version: 2.1
Name: runway-worker
Version: {VERSION}
Summary: Write runway workers in Python (librunway-worker through ctypes)
Requires-Python: >=3.11
"""
WHEEL = f"""Wheel-Version: 1.0
Generator: runway_backend
Root-Is-Purelib: true
Tag: {TAG}
"""


def _package_files():
    base = os.path.join(ROOT, NAME)
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for f in sorted(filenames):
            if f.endswith((".py", ".typed")):
                path = os.path.join(dirpath, f)
                yield path, os.path.relpath(path, ROOT)


def _record_line(arcname, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{arcname},sha256={digest},{len(data)}"


def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    name = f"{DIST}-{VERSION}-{TAG}.whl"
    distinfo = f"{DIST}-{VERSION}.dist-info"
    records = []
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w", zipfile.ZIP_DEFLATED) as z:
        for path, arcname in _package_files():
            with open(path, "rb") as f:
                data = f.read()
            z.writestr(arcname, data)
            records.append(_record_line(arcname, data))
        for fname, text in (("METADATA", METADATA), ("WHEEL", WHEEL)):
            arcname = f"{distinfo}/{fname}"
            z.writestr(arcname, text)
            records.append(_record_line(arcname, text.encode()))
        records.append(f"{distinfo}/RECORD,,")
        z.writestr(f"{distinfo}/RECORD", "\n".join(records) + "\n")
    return name


def build_sdist(sdist_directory, config_settings=None):
    base = f"{DIST}-{VERSION}"
    name = f"{base}.tar.gz"
    with tarfile.open(os.path.join(sdist_directory, name), "w:gz") as t:
        for rel in ("pyproject.toml", "README.md", "build_backend/runway_backend.py"):
            t.add(os.path.join(ROOT, rel), arcname=f"{base}/{rel}")
        for path, arcname in _package_files():
            t.add(path, arcname=f"{base}/{arcname}")
        info = tarfile.TarInfo(f"{base}/PKG-INFO")
        data = METADATA.encode()
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
    return name
