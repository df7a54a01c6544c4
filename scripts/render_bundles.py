#!/usr/bin/env python
"""Render the shipped bundle folders ``bundles/<name>/`` from their one source, ``bundles/_template/``.

The template holds every file a bundle ships (``configs/*.yaml``, ``metadata.json``, ``logging.conf``,
``docs/README.md``, ``LICENSE``) as a Jinja2 template (``*.j2``); ``bundles/_template/bundles.yaml`` holds
what each bundle makes different (channels, 2D / 3D network, patch and tile sizes, synthetic kind,
metadata text, model-card results). The rendered folders are committed, complete and self-contained:
``monai.bundle run``, download, export and MONAI Label read them as any model-zoo bundle. Edit the
template, run this script, commit both; ``--check`` (and ``tests/test_bundle_template.py``) fails when a
committed bundle differs from what the template renders.

Example:
    python scripts/render_bundles.py            # write bundles/<name>/ for every bundle
    python scripts/render_bundles.py --check    # compare only; exit 1 and list the files that differ
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "bundles" / "_template"


def _literal(value: object) -> object:
    """How a value prints in a config: YAML / JSON literals for ``None`` and booleans, lists as flow sequences."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def bundle_values(template: Path = TEMPLATE) -> dict[str, dict]:
    """``{bundle name: template variables}``: each bundle's values over the defaults of its spatial dims, and the
    package version the bundles require (the package's own ``__version__``: one source)."""
    import yaml

    from contextloss_monai import __version__

    spec = yaml.safe_load((template / "bundles.yaml").read_text())
    values = {}
    for name, own in spec["bundles"].items():
        dims = own.get("spatial_dims")
        if dims not in spec["dims"]:
            raise ValueError(f"bundles.yaml: {name}.spatial_dims must be one of {sorted(spec['dims'])}, got {dims!r}.")
        values[name] = {**spec["dims"][dims], **own, "name": name, "package_version": __version__}
    return values


def render(template: Path = TEMPLATE) -> dict[str, dict[str, str]]:
    """``{bundle name: {path inside the bundle: text}}`` for every bundle of ``template/bundles.yaml``."""
    import jinja2

    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(template)),
        undefined=jinja2.StrictUndefined,  # a variable a bundle lacks is an error, never an empty string
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=_literal,
        autoescape=False,
    )
    sources = sorted(p.relative_to(template).as_posix() for p in template.rglob("*.j2"))
    rendered = {}
    for name, values in bundle_values(template).items():
        rendered[name] = {source[: -len(".j2")]: environment.get_template(source).render(**values) for source in sources}
    return rendered


def differences(out_dir: Path, rendered: dict[str, dict[str, str]]) -> list[str]:
    """Files of ``out_dir/<bundle>/`` that are missing or differ from ``rendered``."""
    found = []
    for name, files in rendered.items():
        for relative, text in files.items():
            path = out_dir / name / relative
            if not path.is_file() or path.read_text() != text:
                found.append(f"{name}/{relative}")
    return found


def write(out_dir: Path, rendered: dict[str, dict[str, str]]) -> list[str]:
    """Write every rendered file that differs (temporary file, then renamed into place); return them."""
    changed = differences(out_dir, rendered)
    for entry in changed:
        name, relative = entry.split("/", 1)
        path = out_dir / name / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
        with os.fdopen(handle, "w") as stream:
            stream.write(rendered[name][relative])
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="compare only: exit 1 when a bundle differs from the template")
    parser.add_argument("--template", default=str(TEMPLATE), help="template folder (default: bundles/_template)")
    parser.add_argument("--out", default=str(ROOT / "bundles"), help="where the bundle folders are (default: bundles/)")
    args = parser.parse_args(argv)
    rendered = render(Path(args.template))
    out = Path(args.out)
    if args.check:
        stale = differences(out, rendered)
        if stale:
            print("bundles differ from bundles/_template (run python scripts/render_bundles.py):\n  " + "\n  ".join(stale))
            return 1
        print(f"{len(rendered)} bundles match bundles/_template")
        return 0
    changed = write(out, rendered)
    print("\n".join(f"rendered {c}" for c in changed) or "every bundle already matches bundles/_template")
    return 0


if __name__ == "__main__":
    sys.exit(main())
