#!/usr/bin/env python3
"""Reference pre/post-processing for models/nanodet-g-416.onnx on one image.

Preprocess: plain resize (cv2.INTER_LINEAR, no letterbox) to 416x416, BGR,
(pixel - mean) / std, NCHW float32.
Decode per stride s (8, 16, 32), grid W = H = 416 / s, point i -> (x = i % W,
y = i // W), centre ((x + offset) * s, (y + offset) * s); box logits
[44] = 4 sides (left, top, right, bottom) x 11 bins; distance = sum(softmax(bins)
* [0..10]) * s; box = (cx - l, cy - t, cx + r, cy + b); class-wise NMS.
Boxes are scaled back to the original image size.

Usage: detect_frame.py IMAGE [--model M] [--score 0.35] [--iou 0.6] [--offset 0.5]
                       [--threads 2] [--runs 50] [--draw OUT.png]
Needs numpy, opencv-python(-headless), onnxruntime.
"""
import argparse
import os
import time

import cv2
import numpy as np
import onnxruntime as ort

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = os.path.dirname(HERE)
MEAN = np.array([103.53, 116.28, 123.675], np.float32)  # B, G, R
STD = np.array([57.375, 57.12, 58.395], np.float32)
SIZE = 416
STRIDES = (8, 16, 32)
REG_MAX = 10  # 11 bins


def preprocess(bgr):
    img = cv2.resize(bgr, (SIZE, SIZE), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    img = (img - MEAN) / STD
    return img.transpose(2, 0, 1)[None].copy()


def softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def decode(outs, score_thr=0.35, offset=0.5, side_order=(0, 1, 2, 3)):
    """outs: dict name -> array. Returns boxes [K,4] (x1,y1,x2,y2 in 416 space), scores [K], classes [K]."""
    boxes, scores, classes = [], [], []
    proj = np.arange(REG_MAX + 1, dtype=np.float32)
    for s in STRIDES:
        cls = outs[f"cls_{s}"][0]                       # [N, 80]
        reg = outs[f"box_{s}"][0].reshape(-1, 4, REG_MAX + 1)  # [N, 4, 11]
        w = SIZE // s
        idx, c = np.nonzero(cls > score_thr)
        if idx.size == 0:
            continue
        dist = (softmax(reg[idx], -1) * proj).sum(-1) * s    # [K, 4]
        dist = dist[:, list(side_order)]
        cx = (idx % w + offset) * s
        cy = (idx // w + offset) * s
        boxes.append(np.stack([cx - dist[:, 0], cy - dist[:, 1], cx + dist[:, 2], cy + dist[:, 3]], 1))
        scores.append(cls[idx, c])
        classes.append(c)
    if not boxes:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, int)
    return np.concatenate(boxes), np.concatenate(scores), np.concatenate(classes)


def iou(a, b):
    x1 = np.maximum(a[0], b[:, 0]); y1 = np.maximum(a[1], b[:, 1])
    x2 = np.minimum(a[2], b[:, 2]); y2 = np.minimum(a[3], b[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = lambda r: (r[..., 2] - r[..., 0]) * (r[..., 3] - r[..., 1])
    return inter / (area(a) + area(b) - inter + 1e-9)


def nms(boxes, scores, classes, iou_thr=0.6):
    keep = []
    for c in np.unique(classes):
        ids = np.where(classes == c)[0]
        ids = ids[np.argsort(-scores[ids])]
        while ids.size:
            i = ids[0]
            keep.append(i)
            ids = ids[1:][iou(boxes[i], boxes[ids[1:]]) <= iou_thr] if ids.size > 1 else ids[1:]
    keep = np.array(sorted(keep, key=lambda i: -scores[i]), int)
    return keep


def load_labels():
    with open(os.path.join(MODELS, "nanodet-g-416.labels.txt")) as f:
        return [l.strip() for l in f if l.strip()]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("image")
    ap.add_argument("--model", default=os.path.join(MODELS, "nanodet-g-416.onnx"))
    ap.add_argument("--score", type=float, default=0.35)
    ap.add_argument("--iou", type=float, default=0.6)
    ap.add_argument("--offset", type=float, default=0.5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--draw")
    a = ap.parse_args()

    labels = load_labels()
    bgr = cv2.imread(a.image, cv2.IMREAD_COLOR)
    h0, w0 = bgr.shape[:2]
    so = ort.SessionOptions()
    so.intra_op_num_threads = a.threads
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(a.model, so, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    x = preprocess(bgr)
    outs = dict(zip(names, sess.run(names, {sess.get_inputs()[0].name: x})))

    boxes, scores, classes = decode(outs, a.score, a.offset)
    keep = nms(boxes, scores, classes, a.iou)
    sx, sy = w0 / SIZE, h0 / SIZE
    print(f"{len(keep)} detections (score > {a.score}, NMS IoU {a.iou}, offset {a.offset}) in {w0}x{h0}:")
    for i in keep:
        x1, y1, x2, y2 = boxes[i] * [sx, sy, sx, sy]
        x1, x2 = np.clip([x1, x2], 0, w0); y1, y2 = np.clip([y1, y2], 0, h0)
        print(f"  {labels[classes[i]]:12s} {scores[i]:.3f}  [{x1:6.1f} {y1:6.1f} {x2:6.1f} {y2:6.1f}]")
        if a.draw:
            cv2.rectangle(bgr, (int(x1), int(y1)), (int(x2), int(y2)), (0, 0, 255), 1)
            cv2.putText(bgr, f"{labels[classes[i]]} {scores[i]:.2f}", (int(x1), max(10, int(y1) - 3)),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 255), 1)
    if a.draw:
        cv2.imwrite(a.draw, bgr)

    if a.runs:
        for _ in range(5):
            sess.run(names, {"input": x})
        t_inf, t_all = [], []
        for _ in range(a.runs):
            t0 = time.perf_counter()
            xx = preprocess(bgr)
            t1 = time.perf_counter()
            o = dict(zip(names, sess.run(names, {"input": xx})))
            t2 = time.perf_counter()
            b, s, c = decode(o, a.score, a.offset)
            nms(b, s, c, a.iou)
            t3 = time.perf_counter()
            t_inf.append(t2 - t1); t_all.append(t3 - t0)
        print(f"latency over {a.runs} runs, intra_op_num_threads={a.threads}: "
              f"session.run median {1e3*np.median(t_inf):.1f} ms (p90 {1e3*np.percentile(t_inf, 90):.1f}), "
              f"pre+run+decode+NMS median {1e3*np.median(t_all):.1f} ms")


if __name__ == "__main__":
    main()
