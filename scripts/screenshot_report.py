"""Screenshot a cnnbench HTML report in headless Chromium, to check how the page really renders.

    python scripts/screenshot_report.py reports/latest/report.json --out /tmp/report.png --width 1400 --height 6000

A ``report.json`` is rendered with :func:`cnnbench.report.html.render_html` into a temporary file first; a
``.html`` file is shot as it is. Exits non-zero with a message when Chromium is missing or writes no screenshot.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


class ScreenshotError(RuntimeError):
    """Chromium is missing, failed, or wrote no screenshot."""


def find_chromium() -> str:
    """The path of the first Chromium-like browser on PATH; raises ScreenshotError when there is none."""
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    raise ScreenshotError(f"no Chromium found on PATH (tried {', '.join(BROWSERS)}); install it (apt install chromium)")


def screenshot(html_path: Path, out: Path, width: int = 1400, height: int = 3000, timeout_s: float = 120) -> Path:
    """Render ``html_path`` in headless Chromium at ``width`` × ``height`` CSS pixels into the PNG ``out``, with a
    fresh profile and no network services, so the shot shows only what the self-contained page holds."""
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="cnnbench-chromium-") as profile:
        command = [
            find_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
            f"--user-data-dir={profile}", f"--window-size={width},{height}", f"--screenshot={out}",
            html_path.resolve().as_uri(),
        ]  # fmt: skip
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, check=False)
        except subprocess.TimeoutExpired as exc:
            raise ScreenshotError(f"chromium did not finish within {timeout_s:.0f} s") from exc
    if not out.is_file() or out.stat().st_size == 0:
        raise ScreenshotError(f"chromium wrote no screenshot to {out} (exit {done.returncode}): {done.stderr[-2000:]}")
    return out


def html_file(source: Path, workdir: Path) -> Path:
    """``source`` itself when it is HTML, else the page rendered from the report.json at ``source`` into
    ``workdir``."""
    if source.suffix.lower() in (".html", ".htm"):
        return source
    from cnnbench.report.html import render_html  # cnnbench loads only when a report.json needs rendering
    from cnnbench.results.schema import load_report

    page = workdir / "report.html"
    page.write_text(render_html(load_report(source)), encoding="utf-8")
    return page


def main(argv: list[str] | None = None) -> int:
    """Command line entry point: parse the arguments, render if needed, shoot, and report where the PNG went."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("report", type=Path, help="a report.json or report.html")
    parser.add_argument("--out", type=Path, required=True, help="the PNG to write")
    parser.add_argument("--width", type=int, default=1400, help="viewport width in CSS pixels (default 1400)")
    parser.add_argument("--height", type=int, default=3000, help="viewport height in CSS pixels (default 3000)")
    args = parser.parse_args(argv)
    try:
        with tempfile.TemporaryDirectory(prefix="cnnbench-html-") as workdir:
            out = screenshot(html_file(args.report, Path(workdir)), args.out, args.width, args.height)
    except (ScreenshotError, ValueError) as exc:
        print(f"screenshot_report: {exc}", file=sys.stderr)
        return 1
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
