"""The bundles rendered from their one source, the template shipped in this package (``bundle/template/``).

The template holds every file a bundle ships (``configs/*.yaml``, ``metadata.json``, ``logging.conf``,
``docs/README.md``, ``LICENSE``) as a Jinja2 template (``*.j2``); ``template/bundles.yaml`` holds what each
bundle makes different (channels, 2D / 3D network, patch and tile sizes, synthetic kind, metadata text,
model-card results). The rendered folders are complete and self-contained: ``monai.bundle run``, download,
export and MONAI Label read them as any model-zoo bundle. The repository commits them under ``bundles/``
(``contextloss render-bundles --check`` fails when one differs); the experiment commands render the bundle
they run into their output folder, so they run from a wheel as from the repository::

    contextloss render-bundles --out bundles            # write bundles/<name>/ for every bundle
    contextloss render-bundles --out bundles --check    # compare only; exit 1 and list the files that differ
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from contextloss_monai.utils import write_text_atomic

__all__ = ["TEMPLATE", "bundle_folder", "bundle_names", "bundle_values", "defaults_for", "differences", "render", "render_files", "write"]

#: the template folder inside the installed package
TEMPLATE = Path(__file__).resolve().parent / "template"


def _literal(value: object) -> object:
    """How a value prints in a config: YAML / JSON literals for ``None`` and booleans, lists as flow sequences."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def _spec(template: Path = TEMPLATE) -> dict:
    import yaml

    return yaml.safe_load((Path(template) / "bundles.yaml").read_text())


def defaults_for(spatial_dims: int, template: Path = TEMPLATE) -> dict:
    """The values every bundle of ``spatial_dims`` dimensions shares (``bundles.yaml``'s ``dims``).

    Raises:
        ValueError: for dimensions without defaults.
    """
    dims = _spec(template)["dims"]
    if spatial_dims not in dims:
        raise ValueError(f"spatial_dims must be one of {sorted(dims)}, got {spatial_dims!r}.")
    return dict(dims[spatial_dims])


def bundle_values(template: Path = TEMPLATE) -> dict[str, dict]:
    """``{bundle name: template variables}``: each bundle's values over the defaults of its spatial dims, and the
    package version the bundles require (the package's own ``__version__``: one source).

    Raises:
        ValueError: for a bundle whose ``spatial_dims`` has no defaults in ``bundles.yaml``.
    """
    from contextloss_monai import __version__

    values = {}
    for name, own in _spec(template)["bundles"].items():
        try:
            shared = defaults_for(own.get("spatial_dims"), template)
        except ValueError as error:
            raise ValueError(f"bundles.yaml: {name}.{error}") from None
        values[name] = {**shared, **own, "name": name, "package_version": __version__}
    return values


def bundle_names(template: Path = TEMPLATE) -> list[str]:
    """The names of the bundles the template renders (``roads_2d``, ...)."""
    return sorted(bundle_values(template))


def render_files(values: dict, template: Path = TEMPLATE) -> dict[str, str]:
    """``{path inside the bundle: text}`` of one bundle from its template ``values``."""
    import jinja2

    template = Path(template)
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
    return {source[: -len(".j2")]: environment.get_template(source).render(**values) for source in sources}


def render(template: Path = TEMPLATE, names: list[str] | None = None) -> dict[str, dict[str, str]]:
    """``{bundle name: {path inside the bundle: text}}`` for ``names`` (default: every bundle of ``bundles.yaml``)."""
    return {name: render_files(values, template) for name, values in bundle_values(template).items() if names is None or name in names}


def differences(out_dir: str | os.PathLike, rendered: dict[str, dict[str, str]]) -> list[str]:
    """Files of ``out_dir/<bundle>/`` that are missing or differ from ``rendered``."""
    found = []
    for name, files in rendered.items():
        for relative, text in files.items():
            path = Path(out_dir) / name / relative
            if not path.is_file() or path.read_text() != text:
                found.append(f"{name}/{relative}")
    return found


def write(out_dir: str | os.PathLike, rendered: dict[str, dict[str, str]]) -> list[str]:
    """Write every rendered file that differs (atomically); return them as ``<bundle>/<path>``."""
    changed = differences(out_dir, rendered)
    for entry in changed:
        name, relative = entry.split("/", 1)
        write_text_atomic(Path(out_dir) / name / relative, rendered[name][relative])
    return changed


def bundle_folder(bundle: str | os.PathLike, work_dir: str | os.PathLike) -> Path:
    """The bundle folder an experiment runs: ``bundle`` itself when it is a bundle folder (``configs/metadata.json``),
    else the bundle of that name rendered from the template into ``work_dir/bundles/<name>``.

    Raises:
        ValueError: naming ``bundle`` when it is neither a bundle folder nor a bundle name of the template.
    """
    path = Path(bundle)
    if (path / "configs" / "metadata.json").is_file():
        return path.absolute()
    names = bundle_names()
    if str(bundle) not in names:
        raise ValueError(f"bundle {str(bundle)!r} is neither a bundle folder (with configs/metadata.json) nor one of the bundles {names}.")
    out = Path(work_dir) / "bundles"
    write(out, render(names=[str(bundle)]))
    return (out / str(bundle)).absolute()


def main(argv: list[str] | None = None) -> int:
    """``contextloss render-bundles``."""
    parser = argparse.ArgumentParser(prog="contextloss render-bundles", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="bundles", help="where the bundle folders are (default: bundles)")
    parser.add_argument("--check", action="store_true", help="compare only: exit 1 when a bundle differs from the template")
    parser.add_argument("--template", default=str(TEMPLATE), help="template folder (default: the one in the package)")
    args = parser.parse_args(argv)
    rendered = render(Path(args.template))
    if args.check:
        stale = differences(args.out, rendered)
        if stale:
            print(f"bundles in {args.out} differ from the template (run contextloss render-bundles --out {args.out}):\n  " + "\n  ".join(stale))
            return 1
        print(f"{len(rendered)} bundles in {args.out} match the template")
        return 0
    changed = write(args.out, rendered)
    print("\n".join(f"rendered {c}" for c in changed) or f"every bundle in {args.out} already matches the template")
    return 0


if __name__ == "__main__":
    sys.exit(main())
