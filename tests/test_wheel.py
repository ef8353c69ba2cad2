"""The built wheel runs outside the checkout: installed into a fresh virtual environment in a
temporary folder, `newsletter init`, `issue preview` and `serve` work from the files it carries.

It builds like an operator would (`python -m build`: an sdist, then the wheel from the sdist,
so a file missing from either shows up), with the development environment's setuptools rather
than a fresh isolated one, and installs the wheel's dependencies from the package index without
byte-compiling them: both halve the time of the test.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import venv
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from newsletter.examples import EXAMPLE_LINKS
from tests.harness import free_port

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent


def run(command: list[str], cwd: Path, env: dict[str, str], timeout: float = 300) -> str:
    """Run ``command``; fail the test with its output when it exits non-zero."""
    done = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        pytest.fail(f"{' '.join(command)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without this checkout's settings or import path."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("NEWSLETTER_", "PYTHON", "VIRTUAL_ENV"))
    }
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment, outside the checkout, with only the wheel installed
    (and its dependencies); returns its ``bin`` folder."""
    base = tmp_path_factory.mktemp("wheel")
    dist = base / "dist"
    build = [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist), str(ROOT)]
    run(build, base, clean_env())
    (wheel,) = dist.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "newsletter/templates/email/digest.html" in names
    assert "newsletter/web/static/admin/admin.css" in names
    assert "newsletter/web/static/vendor/simple.css" in names  # vendored, with its licence
    assert "newsletter/web/static/vendor/LICENSE-simple.css.txt" in names
    assert "newsletter/migrations/script.py.mako" in names
    assert "newsletter/locale/fr/LC_MESSAGES/messages.po" in names
    environment = base / "venv"
    venv.create(environment, with_pip=False)
    python = environment / "bin" / "python"
    install = [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-compile"]
    run([*install, str(wheel)], base, clean_env())
    return environment / "bin"


@pytest.fixture(scope="module")
def site(installed: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder outside the checkout where `newsletter init` has run (the tests only read it)."""
    folder = tmp_path_factory.mktemp("site")
    output = run([str(installed / "newsletter"), "init"], folder, clean_env())
    assert "Queued" in output
    assert (folder / "newsletter.toml").is_file()
    return folder


@pytest.fixture
def serving(installed: Path, site: Path) -> Iterator[str]:
    """`newsletter serve` from the installed wheel, on loopback; yields its base URL."""
    port = free_port()
    env = clean_env(NEWSLETTER_SMTP_CATCHER_PORT=str(free_port()))
    command = [str(installed / "newsletter"), "serve", "--host", "127.0.0.1", "--port", str(port)]
    process = subprocess.Popen(
        command, cwd=site, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            output = process.communicate()[0].decode(errors="replace")
            pytest.fail(f"serve did not start:\n{output}")
        time.sleep(0.1)  # polling a starting process, not waiting for time to pass
    yield base
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=20)


def test_installed_package_finds_its_files_inside_the_environment(installed: Path) -> None:
    """The installed package reads templates, static files, migrations and catalogues from
    itself, not from the checkout it was built in."""
    script = (
        "from newsletter import resources as r;"
        "print(r.EMAIL_TEMPLATES_DIR, r.WEB_TEMPLATES_DIR, r.STATIC_DIR, r.MIGRATIONS_DIR,"
        " r.LOCALE_DIR)"
    )
    output = run([str(installed / "python"), "-c", script], installed, clean_env())
    environment = installed.parent.resolve()
    for folder in output.split():
        assert Path(folder).is_relative_to(environment)
        assert Path(folder).is_dir()


def test_installed_issue_preview_renders_the_example_issue(installed: Path, site: Path) -> None:
    """`newsletter issue preview` renders issue #1 from the examples `init` queued, in HTML
    and in French text (the catalogue ships in the wheel)."""
    preview = [str(installed / "newsletter"), "issue", "preview"]
    html = run([*preview, "--format", "html"], site, clean_env())
    text = run([*preview, "--format", "text"], site, clean_env())
    assert html.lstrip().startswith("<!DOCTYPE html>")
    assert "#1" in html
    assert "#1" in text
    assert "Voir dans le navigateur" in text
    flowing = " ".join(text.split())  # the text part is wrapped at 72 columns
    for link in EXAMPLE_LINKS:
        assert link["url"] in text
        assert " ".join(link["title"].split()) in flowing


def test_installed_serve_answers_health_pages_and_static_files(serving: str) -> None:
    """`newsletter serve` answers /healthz, the public home page and the admin's static files."""
    assert httpx.get(f"{serving}/healthz").status_code == 200
    home = httpx.get(f"{serving}/")
    assert home.status_code == 200
    assert "<html" in home.text
    assert httpx.get(f"{serving}/admin/static/admin.css").status_code == 200
    assert httpx.get(f"{serving}/static/vendor/simple.css").status_code == 200
    assert httpx.get(f"{serving}/admin/login").status_code == 200
