"""Where an HDRI named in the settings is: one rule for names, read without loading any image (or torch).

Names follow the identity/stream rule (``engines.paths.check_name``), so nothing a client sends can point
outside the data directory's ``hdri/`` folder; the settings are checked against it when they are set
(``streamer.plan``), and the relighting reads the image (``engines.light.relight.hdri_sh``).
"""

from __future__ import annotations

from pathlib import Path

from engines.errors import InputError
from engines.paths import check_name, inside

HDRI_SUFFIXES = (".hdr", ".png", ".jpg", ".jpeg", ".tif", ".tiff")


def hdri_folder(data_dir: Path) -> Path:
    """Where the HDRI images a relight target names are: the data directory's ``hdri/``."""
    return Path(data_dir) / "hdri"


def hdri_path(name: str, hdri_dir: Path | None) -> Path:
    """The file of the HDRI called ``name`` (with or without its suffix) inside ``hdri_dir``.

    Names follow the identity/stream rule (``engines.paths.check_name``), so nothing a client sends can
    point outside the folder.
    """
    if hdri_dir is None:
        raise InputError("relight target 'hdri' needs an HDRI folder (the data directory's hdri/)")
    stem, suffix = name, ""
    for s in HDRI_SUFFIXES:
        if name.lower().endswith(s):
            stem, suffix = name[: -len(s)], s
            break
    check_name(stem, "HDRI name")
    candidates = [stem + suffix] if suffix else [stem + s for s in HDRI_SUFFIXES]
    for candidate in candidates:
        path = inside(Path(hdri_dir), candidate)
        if path.is_file():
            return path
    available = sorted(p.name for p in Path(hdri_dir).glob("*") if p.suffix.lower() in HDRI_SUFFIXES)
    listing = ", ".join(available) if available else "none: put .hdr, .png, .jpg or .tif images there"
    raise InputError(f"no HDRI named {name!r} in {hdri_dir} (available: {listing})")
