"""NanoDet (anchor-free, generalised focal loss heads) exported to ONNX.

Outputs per stride s (8, 16, 32) on a grid of (W/s) x (H/s) points: class
scores [1, N, C] with sigmoid applied, and box distributions [1, N, 4 * bins]
for the distances left, top, right, bottom as a softmax over ``bins`` values
of 0..bins-1 strides, measured from the centre of grid cell (x + 0.5, y + 0.5).
NMS is done here, not in the graph.
"""

from __future__ import annotations

import numpy as np

from edge.detections import Detections
from edge.detectors.base import Detector, DetectorError, register
from edge.detectors.runtime import normalised_blob, open_session
from edge.nms import nms

STRIDES = (8, 16, 32)


@register
class NanoDetDetector(Detector):
    family = "nanodet"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.session = open_session(self.model_path, self.threads)
        self.input_name = self.session.get_inputs()[0].name
        self.size = (self.card.input_width, self.card.input_height)
        self.mean = np.asarray(self.card.mean, dtype=np.float32)
        self.std = np.asarray(self.card.std, dtype=np.float32)
        self.heads = self._pair_heads()

    def _pair_heads(self) -> list[tuple[int, str, str, int, np.ndarray]]:
        """Match score and box outputs by their point count: (stride, cls, box, bins, centres)."""
        n_classes = len(self.card.labels)
        w, h = self.size
        by_count: dict[int, dict[str, tuple[str, int]]] = {}
        for out in self.session.get_outputs():
            count, width = int(out.shape[1]), int(out.shape[2])
            role = "cls" if width == n_classes else "box"
            by_count.setdefault(count, {})[role] = (out.name, width)
        heads = []
        for stride in STRIDES:
            gw, gh = w // stride, h // stride
            pair = by_count.get(gw * gh, {})
            if set(pair) != {"cls", "box"} or pair["box"][1] % 4:
                raise DetectorError(f"{self.model_path.name}: no score/box output pair for stride {stride}")
            ys, xs = np.divmod(np.arange(gw * gh), gw)
            centres = (np.stack([xs, ys], axis=1).astype(np.float32) + 0.5) * stride
            heads.append((stride, pair["cls"][0], pair["box"][0], pair["box"][1] // 4, centres))
        return heads

    def detect(self, image: np.ndarray) -> Detections:
        height, width = image.shape[:2]
        blob = normalised_blob(image, self.size, self.mean, self.std, self.card.color_order == "rgb")
        outputs = dict(zip([o.name for o in self.session.get_outputs()], self.session.run(None, {self.input_name: blob})))
        boxes, scores, classes = [], [], []
        for stride, cls_name, box_name, bins, centres in self.heads:
            cls = outputs[cls_name][0]
            best = cls.argmax(axis=1)
            best_score = cls[np.arange(len(cls)), best]
            keep = best_score >= self.min_score
            if not keep.any():
                continue
            boxes.append(self._decode_boxes(outputs[box_name][0][keep], centres[keep], bins, stride))
            scores.append(best_score[keep])
            classes.append(best[keep])
        if not boxes:
            return Detections.empty(self.labels)
        xyxy = np.concatenate(boxes)
        xyxy *= np.array([width / self.size[0], height / self.size[1]] * 2, dtype=np.float32)
        np.clip(xyxy, 0, [width, height, width, height], out=xyxy)
        score = np.concatenate(scores).astype(np.float32)
        class_ids = np.concatenate(classes).astype(np.int32)
        kept = nms(xyxy, score, class_ids, self.nms_iou)
        return Detections(xyxy=xyxy[kept], scores=score[kept], class_ids=class_ids[kept], labels=self.labels)

    @staticmethod
    def _decode_boxes(dist: np.ndarray, centres: np.ndarray, bins: int, stride: int) -> np.ndarray:
        logits = dist.reshape(-1, 4, bins)
        logits = logits - logits.max(axis=2, keepdims=True)
        prob = np.exp(logits)
        prob /= prob.sum(axis=2, keepdims=True)
        ltrb = (prob * np.arange(bins, dtype=np.float32)).sum(axis=2) * stride
        return np.concatenate([centres - ltrb[:, :2], centres + ltrb[:, 2:]], axis=1).astype(np.float32)
