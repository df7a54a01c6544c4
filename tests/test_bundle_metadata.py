"""Every bundle's ``configs/metadata.json`` against the rules of MONAI's metadata schema 20240725.

The schema file itself is not part of the repository: these tests write its rules out (required keys and
their types, the tensor format of ``network_data_format``) and add the project's own (``version`` in
``changelog``, a ``channel_def`` per channel, package versions that ``constraints.txt`` installs, the
paper cited). MONAI's ``verify_metadata`` runs as well when ``CONTEXTLOSS_META_SCHEMA`` names a schema
file (online, MONAI downloads it from the ``schema`` URL: see ``bundles/README.md``).
"""

from __future__ import annotations

import copy
import json
import os
import re
from pathlib import Path

import pytest
import yaml

import contextloss_monai

ROOT = Path(__file__).resolve().parents[1]
BUNDLES = sorted(p.name for p in (ROOT / "bundles").iterdir() if (p / "configs/metadata.json").is_file())
SCHEMA_URL = "https://github.com/Project-MONAI/MONAI-extra-test-data/releases/download/0.8.1/meta_schema_20240725.json"
# the schema's required top-level keys and the JSON types of every key it describes
REQUIRED = ("schema", "version", "monai_version", "pytorch_version", "numpy_version", "required_packages_version",
            "task", "description", "authors", "copyright", "network_data_format")
TYPES = {
    "schema": str, "version": str, "changelog": dict, "monai_version": str, "pytorch_version": str,
    "numpy_version": str, "required_packages_version": dict, "task": str, "description": str, "authors": str,
    "copyright": str, "data_source": str, "data_type": str, "image_classes": str, "label_classes": str,
    "pred_classes": str, "eval_metrics": dict, "intended_use": str, "references": list, "supported_apps": dict,
    "network_data_format": dict,
}
TENSOR_REQUIRED = ("type", "format", "num_channels", "spatial_shape", "dtype", "value_range")
EXACT_VERSION = re.compile(r"^\d+\.\d+(\.\d+)?$")


def pinned_versions() -> dict[str, str]:
    """``{normalised name: version}`` of every ``name==version`` line in the constraints files CI installs."""
    pins = {}
    for name in ("constraints-base.txt", "constraints.txt"):
        for line in (ROOT / name).read_text().splitlines():
            match = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s#]+)", line.strip())
            if match:
                pins[re.sub(r"[-_.]+", "-", match[1]).lower()] = match[2]
    return pins


def tensor_problems(where: str, tensor: object) -> list[str]:
    if not isinstance(tensor, dict):
        return [f"{where} must be an object"]
    problems = [f"{where} lacks '{key}'" for key in TENSOR_REQUIRED if key not in tensor]
    kinds = {"type": str, "format": str, "num_channels": int, "spatial_shape": list, "dtype": str, "value_range": list,
             "is_patch_data": bool, "channel_def": dict}
    problems += [f"{where}.{k} must be {t.__name__}" for k, t in kinds.items() if k in tensor and not isinstance(tensor[k], t)]
    if problems:
        return problems
    if not all(isinstance(s, (int, str)) and not isinstance(s, bool) for s in tensor["spatial_shape"]):
        problems.append(f"{where}.spatial_shape items must be integers or strings")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in tensor["value_range"]):
        problems.append(f"{where}.value_range items must be numbers")
    channels = tensor.get("channel_def")
    if channels is None:
        problems.append(f"{where} lacks 'channel_def' (one name per channel)")
    elif sorted(channels) != [str(i) for i in range(tensor["num_channels"])]:
        problems.append(f"{where}.channel_def must name channels 0..{tensor['num_channels'] - 1}, got {sorted(channels)}")
    return problems


def metadata_problems(metadata: dict, network: dict) -> list[str]:
    """What is wrong with ``metadata`` for a bundle whose ``network_def`` is ``network`` (empty: nothing)."""
    problems = [f"lacks the required key '{key}'" for key in REQUIRED if key not in metadata]
    problems += [f"'{k}' must be {t.__name__}" for k, t in TYPES.items() if k in metadata and not isinstance(metadata[k], t)]
    if problems:
        return problems
    if metadata["schema"] != SCHEMA_URL:
        problems.append(f"schema must be {SCHEMA_URL}")
    if metadata["version"] not in metadata.get("changelog", {}):
        problems.append(f"version {metadata['version']} has no changelog entry")
    if not isinstance(metadata.get("references"), list) or not all(isinstance(r, str) for r in metadata["references"]):
        problems.append("references must be a list of strings")
    pins = pinned_versions()
    versions = {"monai": metadata["monai_version"], "torch": metadata["pytorch_version"], "numpy": metadata["numpy_version"]}
    versions.update(metadata["required_packages_version"])
    for package, version in versions.items():
        name = re.sub(r"[-_.]+", "-", package).lower()
        wanted = contextloss_monai.__version__ if name == "contextloss-monai" else pins.get(name)
        if not isinstance(version, str) or not EXACT_VERSION.match(version):
            problems.append(f"{package} version {version!r} is not an exact version")
        elif wanted != version:
            problems.append(f"{package}=={version} is not what constraints.txt installs ({wanted})")
    io = metadata["network_data_format"]
    for part in ("inputs", "outputs"):
        if not isinstance(io.get(part), dict) or not io[part]:
            problems.append(f"network_data_format.{part} must be a non-empty object")
    if problems:
        return problems
    for part in ("inputs", "outputs"):
        for name, tensor in io[part].items():
            problems += tensor_problems(f"network_data_format.{part}.{name}", tensor)
    if problems:
        return problems
    image, pred = io["inputs"].get("image"), io["outputs"].get("pred")
    if image is None or pred is None:
        return ["network_data_format needs inputs.image and outputs.pred"]
    if image["num_channels"] != network["in_channels"]:
        problems.append(f"inputs.image.num_channels {image['num_channels']} != network in_channels {network['in_channels']}")
    if pred["num_channels"] != network["out_channels"]:
        problems.append(f"outputs.pred.num_channels {pred['num_channels']} != network out_channels {network['out_channels']}")
    for name, tensor in (("image", image), ("pred", pred)):
        if len(tensor["spatial_shape"]) != network["spatial_dims"]:
            problems.append(f"{name}.spatial_shape has {len(tensor['spatial_shape'])} axes, the network {network['spatial_dims']}")
    return problems


def load(name: str) -> tuple[dict, dict]:
    configs = ROOT / "bundles" / name / "configs"
    train = yaml.safe_load((configs / "train.yaml").read_text())
    return json.loads((configs / "metadata.json").read_text()), train["network_def"]


@pytest.mark.parametrize("name", BUNDLES)
def test_metadata_follows_the_schema_rules(name):
    metadata, network = load(name)
    assert metadata_problems(metadata, network) == []


@pytest.mark.parametrize("name", BUNDLES)
def test_metadata_cites_the_paper(name):
    metadata, _ = load(name)
    paper = [r for r in metadata["references"] if "ContextLoss" in r]
    assert len(paper) == 1 and "arXiv:2506.11134" in paper[0] and "ICIP 2025" in paper[0] and "Schacht" in paper[0]
    card = (ROOT / "bundles" / name / "docs/README.md").read_text()
    assert "arXiv:2506.11134" in card and "ICIP 2025" in card


def test_the_rules_reject_broken_metadata():
    metadata, network = load("roads_2d")
    cases = {
        "lacks the required key 'task'": lambda m: m.pop("task"),
        "has no changelog entry": lambda m: m.update(version="9.9.9"),
        "'references' must be list": lambda m: m.update(references="a paper"),
        "is not what constraints.txt installs": lambda m: m["required_packages_version"].update(nibabel="1.0.0"),
        "is not an exact version": lambda m: m.update(pytorch_version=">=2.4"),
        "lacks 'dtype'": lambda m: m["network_data_format"]["inputs"]["image"].pop("dtype"),
        "channel_def must name channels": lambda m: m["network_data_format"]["inputs"]["image"]["channel_def"].pop("2"),
        "lacks 'channel_def'": lambda m: m["network_data_format"]["outputs"]["pred"].pop("channel_def"),
        "!= network in_channels": lambda m: m["network_data_format"]["inputs"]["image"].update(
            num_channels=1, channel_def={"0": "grey"}),
        "spatial_shape has 3 axes": lambda m: m["network_data_format"]["outputs"]["pred"].update(spatial_shape=[8, 8, 8]),
        "schema must be": lambda m: m.update(schema="meta_schema.json"),
    }
    for expected, breaks in cases.items():
        broken = copy.deepcopy(metadata)
        breaks(broken)
        problems = metadata_problems(broken, network)
        assert any(expected in p for p in problems), (expected, problems)


@pytest.mark.skipif(not os.environ.get("CONTEXTLOSS_META_SCHEMA"), reason="CONTEXTLOSS_META_SCHEMA names no schema file")
@pytest.mark.parametrize("name", BUNDLES)
def test_monai_verify_metadata(name):
    """MONAI's own check, against the schema file that ``CONTEXTLOSS_META_SCHEMA`` names."""
    from monai.bundle import verify_metadata

    meta_file = ROOT / "bundles" / name / "configs/metadata.json"
    verify_metadata(meta_file=str(meta_file), filepath=os.environ["CONTEXTLOSS_META_SCHEMA"])


def test_repository_refers_to_nothing_outside_it():
    """No tracked text file points at a folder beside the checkout (users and CI clone the repository alone)."""
    import subprocess

    outside = ".." + "/shared"
    patterns = (outside, "shared/" + "schemas", "shared/" + "paper", "SPEC" + ".md")
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    if not files:  # not a git checkout (e.g. an unpacked sdist): every file under the root
        files = [str(p.relative_to(ROOT)) for p in ROOT.rglob("*") if p.is_file() and ".venv" not in p.parts]
    hits = []
    for name in files:
        path = ROOT / name
        if path.suffix not in {".py", ".yaml", ".yml", ".json", ".md", ".cfg", ".toml", ".txt", ".conf"} and name != ".ci/run":
            continue
        text = path.read_text(errors="replace")
        hits += [f"{name}: {p}" for p in patterns if p in text]
    assert hits == []
