"""Render a local HTML file to a PNG with headless Chromium (for screenshot tests)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

BINARIES = ("chromium", "chromium-browser", "google-chrome")
# Everything that would reach the network or a profile is off: the page must render from the file alone.
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--hide-scrollbars",
)  # fmt: skip


def find_chromium() -> str | None:
    """The first Chromium-family binary on PATH, or None."""
    return next((found for name in BINARIES if (found := shutil.which(name))), None)


def screenshot(html_path: Path, png_path: Path, *, width: int = 1200, height: int = 1600,
               timeout: float = 90) -> Path:  # fmt: skip
    """Screenshot the top `width` × `height` pixels of the page into `png_path`."""
    binary = find_chromium()
    if binary is None:
        raise FileNotFoundError("no chromium binary on PATH")
    with tempfile.TemporaryDirectory(prefix="vskip-chromium-") as profile:
        command = [
            binary, *FLAGS, f"--user-data-dir={profile}", f"--screenshot={png_path}",
            f"--window-size={width},{height}", Path(html_path).resolve().as_uri(),
        ]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0 or not Path(png_path).is_file():
        raise RuntimeError(f"chromium failed ({result.returncode}): {result.stderr[-2000:]}")
    return Path(png_path)
