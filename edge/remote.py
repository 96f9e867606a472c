"""Config changes from operators, published on the box's retained ``config`` topic.

A change is a JSON patch over the box's file config (the TOML as a table):

    {"rules": {"street_vending": {"dwell_s": 45}},
     "detector": {"min_score": 0.4},
     "cameras": [{"name": "road", "zones": [ ...the camera's complete new zone list... ]}]}

Tables merge key by key; ``cameras`` entries are matched by ``name`` and may
not add or remove cameras; a camera's ``zones`` list is replaced as a whole.
Only what can change while the box runs may be patched (see ``LIVE_KEYS``).
The result is validated with the same schema as the file; an invalid patch
changes nothing. The last accepted patch is kept on disk and applied again
at start, before the broker is reachable.
"""

from __future__ import annotations

import copy
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from edge.config import BoxConfig, ConfigError, parse_config

log = logging.getLogger(__name__)

MAX_PATCH_BYTES = 256 * 1024
LIVE_KEYS = {
    "rules": True,
    "static_objects": True,
    "evidence_jpeg_quality": True,
    "detector": {"min_score", "nms_iou"},
    "cameras": {"name", "zones", "filters", "motion"},
}


class PatchRejected(ValueError):
    """A config patch cannot be applied; the message is sent back as the reason."""


@dataclass(frozen=True)
class Decision:
    config: BoxConfig | None
    reason: str

    @property
    def accepted(self) -> bool:
        return self.config is not None


def check_live_keys(patch: dict) -> None:
    for key, value in patch.items():
        allowed = LIVE_KEYS.get(key)
        if allowed is None:
            raise PatchRejected(f"{key}: cannot be changed remotely (allowed: {', '.join(sorted(LIVE_KEYS))})")
        if allowed is True:
            continue
        items = value if key == "cameras" else [value]
        if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
            raise PatchRejected(f"{key}: must be {'a list of tables' if key == 'cameras' else 'a table'}")
        for index, item in enumerate(items):
            for sub in item:
                if sub not in allowed:
                    where = f"{key}.{index}.{sub}" if key == "cameras" else f"{key}.{sub}"
                    raise PatchRejected(f"{where}: cannot be changed remotely")


def merge(base: dict, patch: dict) -> dict:
    """A new table: ``patch`` over ``base``; cameras matched by name."""
    merged = copy.deepcopy(base)
    for key, value in patch.items():
        if key == "cameras":
            merged["cameras"] = _merge_cameras(merged.get("cameras", []), value)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _merge_cameras(cameras: list[dict], patches: list[dict]) -> list[dict]:
    by_name = {camera.get("name"): index for index, camera in enumerate(cameras)}
    cameras = copy.deepcopy(cameras)
    for index, patch in enumerate(patches):
        name = patch.get("name")
        if name not in by_name:
            raise PatchRejected(f"cameras.{index}.name: no camera named {name!r} on this box")
        target = cameras[by_name[name]]
        for key, value in patch.items():
            if isinstance(value, dict) and isinstance(target.get(key), dict):
                target[key] = merge(target[key], value)
            else:
                target[key] = copy.deepcopy(value)
    return cameras


class RemoteConfig:
    """Turns patches into validated configs over the box's file config."""

    def __init__(self, file_table: dict, base_dir: Path, state_file: Path) -> None:
        self.file_table = copy.deepcopy(file_table)
        self.base_dir = base_dir
        self.state_file = state_file

    def decide(self, payload: bytes) -> Decision:
        try:
            patch = self._parse(payload)
            check_live_keys(patch)
            table = merge(self.file_table, patch)
            config = parse_config(copy.deepcopy(table), "config topic", self.base_dir)
        except PatchRejected as exc:
            return Decision(None, str(exc))
        except ConfigError as exc:
            return Decision(None, "; ".join(exc.problems))
        return Decision(config, "")

    def remember(self, payload: bytes) -> None:
        """Keep the accepted patch so that it is applied again after a restart."""
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        temp = self.state_file.with_suffix(".tmp")
        temp.write_bytes(payload)
        with temp.open("rb") as f:
            os.fsync(f.fileno())
        temp.replace(self.state_file)

    def remembered(self) -> Decision | None:
        try:
            payload = self.state_file.read_bytes()
        except FileNotFoundError:
            return None
        decision = self.decide(payload)
        if not decision.accepted:
            log.warning("config.remembered_patch_invalid file=%s reason=%s", self.state_file, decision.reason[:300])
        return decision

    @staticmethod
    def _parse(payload: bytes) -> dict:
        if len(payload) > MAX_PATCH_BYTES:
            raise PatchRejected(f"patch of {len(payload)} bytes exceeds {MAX_PATCH_BYTES}")
        try:
            patch = json.loads(payload)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise PatchRejected(f"not valid JSON: {exc}") from None
        if not isinstance(patch, dict):
            raise PatchRejected("a patch must be a JSON object")
        return patch
