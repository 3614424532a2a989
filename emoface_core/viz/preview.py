"""A simple 2D face driven by the controller channels, rendered to GIF or MP4 (with the audio).

The point is judging a bake by eye without Unreal: does the jaw open on the vowels, do the lips
close on silence, do the corners and brows carry the emotion, do the eyes blink and wander.
Rendering has two steps so each can be tested on its own:

1. ``face_shape(values)`` reads one frame's channels into a ``FaceShape``: plain numbers (eye
   openness, iris offset, brow heights, mouth corners and lip gaps) in face units, where the
   face is about 2 units wide. The sign conventions follow the face board (shared reference 3.2):
   jaw ``ty`` + opens; corner ``ty`` + is up; blink + closes and - widens; eye ``tx`` + looks to
   the character's left, which is the viewer's right; ``ty`` + looks up.
2. ``FaceRenderer.render(values)`` draws that shape with Pillow (supersampled, then reduced, for
   smooth edges).

GIFs are written by Pillow at 25 fps (GIF delays are whole centiseconds, so 25 fps is exact);
MP4s by piping raw frames to ``ffmpeg`` (H.264 when available, else MPEG-4) and muxing the audio.
Both go through a temporary file and ``os.replace``, so an interrupted preview leaves nothing.

Longer than most modules (~640 lines): one renderer, whose drawing of each face part from its
channels is most of the file.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from emoface_core.animation import Animation
from emoface_core.controllers import CONTROLLER_INDEX, N_CONTROLLERS
from emoface_core.errors import EmoFaceError
from emoface_core.formats import default_file_mode

log = logging.getLogger(__name__)

GIF_FPS = 25  # GIF frame delays are whole centiseconds: 4 cs per frame is exactly 25 fps
GIF_SIZE_PX = 320  # GIF holds every frame in memory while encoding; keep it small
MP4_SIZE_PX = 512
SUPERSAMPLE = 2  # draw at 2x and reduce: anti-aliased edges without a vector renderer

SKIN = (236, 200, 170)
SKIN_SHADE = (214, 170, 140)
OUTLINE = (90, 60, 45)
EYE_WHITE = (250, 250, 250)
IRIS = (70, 110, 160)
PUPIL = (15, 15, 20)
BROW = (80, 55, 40)
LIP = (190, 90, 90)
MOUTH_INSIDE = (60, 20, 25)
TEETH = (245, 245, 235)
BACKGROUND = (40, 44, 52)
TEXT = (200, 200, 200)


class PreviewError(EmoFaceError, RuntimeError):
    """A preview cannot be written (no ffmpeg, encoder failure, unknown format)."""


def _ch(values: np.ndarray, name: str) -> float:
    return float(values[CONTROLLER_INDEX[name]])


def _pos(x: float) -> float:
    return max(0.0, x)


@dataclass(frozen=True)
class EyeShape:
    """One eye, in face units.

    Attributes:
        upper_open: height of the upper lid above the eye line (0 = shut, ~0.09 relaxed).
        lower_open: depth of the lower lid below the eye line.
        iris_dx: iris offset to the viewer's right.
        iris_dy: iris offset upwards.
    """

    upper_open: float
    lower_open: float
    iris_dx: float
    iris_dy: float


@dataclass(frozen=True)
class BrowShape:
    """One brow: heights (up is positive) of its inner and outer ends, and its inner shift."""

    inner_up: float
    outer_up: float
    inner_shift: float  # towards the nose


@dataclass(frozen=True)
class MouthShape:
    """The mouth in face units; x to the viewer's right, y upwards, relative to its rest centre.

    Attributes:
        left: (x, y) of the corner on the viewer's left (the character's right corner).
        right: (x, y) of the corner on the viewer's right (the character's left corner).
        upper_lip_y: inner edge of the upper lip at the centre.
        lower_lip_y: inner edge of the lower lip at the centre.
        lip_thickness: scale of both lips (pursing and funnelling push them out).
        shift_x: sideways shift of the lower lip and chin (jaw sideways).
        chin_drop: how far the chin moves down.
    """

    left: tuple[float, float]
    right: tuple[float, float]
    upper_lip_y: float
    lower_lip_y: float
    lip_thickness: float
    shift_x: float
    chin_drop: float

    @property
    def gap(self) -> float:
        """Opening between the lips at the centre (0 = closed)."""
        return max(0.0, self.upper_lip_y - self.lower_lip_y)

    @property
    def width(self) -> float:
        """Corner to corner."""
        return self.right[0] - self.left[0]


@dataclass(frozen=True)
class FaceShape:
    """Everything the renderer draws for one frame ("left" and "right" are the viewer's)."""

    eye_left: EyeShape
    eye_right: EyeShape
    brow_left: BrowShape
    brow_right: BrowShape
    mouth: MouthShape
    cheek_raise_left: float
    cheek_raise_right: float
    nose_wrinkle: float
    nasolabial: float = 0.0  # depth of the folds from the nose to the mouth corners
    chin_raise: float = 0.0  # the chin pushing the lower lip up (pout)


def _eye(values: np.ndarray, side: str, gaze_x: float, gaze_y: float) -> EyeShape:
    blink = _ch(values, f"CTRL_{side}_eye_blink-translateY")  # + closes, - widens
    lid_u = _ch(values, f"CTRL_{side}_eye_eyelidU-translateY")  # + relaxes (lower), - raises
    lid_d = _ch(values, f"CTRL_{side}_eye_eyelidD-translateY")  # + raises the lower lid
    squint = _ch(values, f"CTRL_{side}_eye_squintInner-translateY")
    cheek = _ch(values, f"CTRL_{side}_eye_cheekRaise-translateY")
    scrunch = _ch(values, f"CTRL_{side}_eye_faceScrunch-translateY")
    upper = 1.0 - _pos(blink) + 0.45 * _pos(-blink) - 0.35 * _pos(lid_u) + 0.35 * _pos(-lid_u)
    upper -= 0.25 * scrunch + 0.3 * squint
    lower = 1.0 - 0.5 * _pos(lid_d) + 0.3 * _pos(-lid_d) - 0.5 * cheek - 0.5 * squint
    lower -= 0.5 * _pos(blink)
    ex = gaze_x + _ch(values, f"CTRL_{side}_eye-translateX")
    ey = gaze_y + _ch(values, f"CTRL_{side}_eye-translateY")
    return EyeShape(
        upper_open=0.09 * float(np.clip(upper, 0.0, 1.6)),
        lower_open=0.06 * float(np.clip(lower, 0.0, 1.4)),
        iris_dx=0.07 * float(np.clip(ex, -1.0, 1.0)),
        iris_dy=0.05 * float(np.clip(ey, -1.0, 1.0)),
    )


def _brow(values: np.ndarray, side: str) -> BrowShape:
    raise_in = _ch(values, f"CTRL_{side}_brow_raiseIn-translateY")
    raise_out = _ch(values, f"CTRL_{side}_brow_raiseOut-translateY")
    down = _ch(values, f"CTRL_{side}_brow_down-translateY")
    lateral = _ch(values, f"CTRL_{side}_brow_lateral-translateY")
    return BrowShape(
        inner_up=0.15 * raise_in - 0.16 * down,
        outer_up=0.13 * raise_out - 0.06 * down,
        inner_shift=0.08 * lateral + 0.03 * down,
    )


def face_shape(values: np.ndarray) -> FaceShape:
    """Read one frame ``[174]`` of channel values into the shape the renderer draws.

    The mapping is deliberately simple and monotone (each control moves the feature its name
    says, in the board's direction), so a preview shows what the channels ask for.
    """
    values = np.asarray(values, dtype=np.float32)
    assert values.shape == (N_CONTROLLERS,), values.shape
    gx, gy = _ch(values, "CTRL_C_eye-translateX"), _ch(values, "CTRL_C_eye-translateY")
    # Viewer's left is the character's right (R channels), and vice versa.
    eye_left, eye_right = _eye(values, "R", gx, gy), _eye(values, "L", gx, gy)

    jaw = float(np.clip(_ch(values, "CTRL_C_jaw-translateY"), 0.0, 1.0))
    jaw += 0.4 * _pos(_ch(values, "CTRL_C_jaw_openExtreme-translateY"))
    jaw_side = _ch(values, "CTRL_C_jaw-translateX")  # + = jaw to the character's right
    mouth_x = _ch(values, "CTRL_C_mouth-translateX")  # + = mouth to the character's left
    mouth_y = _ch(values, "CTRL_C_mouth-translateY")  # + = up

    def both(part: str) -> float:
        return 0.5 * (
            _ch(values, f"CTRL_L_mouth_{part}-translateY")
            + _ch(values, f"CTRL_R_mouth_{part}-translateY")
        )

    funnel = 0.5 * (both("funnelU") + both("funnelD"))
    purse = 0.5 * (both("purseU") + both("purseD"))
    together = 0.5 * (both("lipsTogetherU") + both("lipsTogetherD"))
    press = _pos(both("pressU") + both("pressD")) * 0.5 + _pos(both("lipsPressU"))
    upper_raise = both("upperLipRaise")
    lower_depress = both("lowerLipDepress")
    tighten = _pos(0.5 * (both("tightenU") + both("tightenD")))
    chin = _pos(
        0.5 * (_ch(values, "CTRL_L_jaw_ChinRaiseD-translateY")
               + _ch(values, "CTRL_R_jaw_ChinRaiseD-translateY"))
    )  # fmt: skip

    def corner(side: str, sign: float) -> tuple[float, float]:
        up = _ch(values, f"CTRL_{side}_mouth_corner-translateY")
        wide = _ch(values, f"CTRL_{side}_mouth_corner-translateX")
        pull = _ch(values, f"CTRL_{side}_mouth_cornerPull-translateY")
        sharp_pull = _ch(values, f"CTRL_{side}_mouth_sharpCornerPull-translateY")
        depress = _ch(values, f"CTRL_{side}_mouth_cornerDepress-translateY")
        stretch = _ch(values, f"CTRL_{side}_mouth_stretch-translateY")
        dimple = _ch(values, f"CTRL_{side}_mouth_dimple-translateY")
        half = 0.3 * (
            1.0
            + 0.18 * wide
            + 0.15 * (pull + sharp_pull)
            + 0.2 * stretch
            + 0.05 * dimple
            - 0.3 * purse
            - 0.2 * funnel
            - 0.12 * tighten
        )
        y = 0.1 * up + 0.11 * (pull + sharp_pull) - 0.12 * depress - 0.12 * jaw
        return sign * max(half, 0.08), y

    left = corner("R", -1.0)
    right = corner("L", 1.0)
    shift = 0.08 * mouth_x
    opening = 0.32 * jaw * (1.0 - 0.7 * float(np.clip(together, 0.0, 1.0)))
    upper = 0.07 * upper_raise + 0.015 * funnel - 0.02 * press
    lower = -opening - 0.04 * lower_depress - 0.02 * funnel + 0.02 * press + 0.02 * chin
    lower = min(lower, upper)  # lips meet, they never cross
    return FaceShape(
        eye_left=eye_left,
        eye_right=eye_right,
        brow_left=_brow(values, "R"),
        brow_right=_brow(values, "L"),
        mouth=MouthShape(
            left=(left[0] + shift, left[1] + 0.05 * mouth_y),
            right=(right[0] + shift, right[1] + 0.05 * mouth_y),
            upper_lip_y=upper + 0.05 * mouth_y,
            lower_lip_y=lower + 0.05 * mouth_y,
            lip_thickness=max(0.3, 1.0 + 0.5 * purse + 0.35 * funnel - 0.3 * press - 0.6 * tighten),
            shift_x=shift - 0.06 * jaw_side,
            chin_drop=0.3 * jaw,
        ),
        cheek_raise_left=_ch(values, "CTRL_R_eye_cheekRaise-translateY"),
        cheek_raise_right=_ch(values, "CTRL_L_eye_cheekRaise-translateY"),
        nose_wrinkle=0.5
        * (
            _pos(_ch(values, "CTRL_L_nose-translateY"))
            + _pos(_ch(values, "CTRL_R_nose-translateY"))
            + _ch(values, "CTRL_L_nose_wrinkleUpper-translateY")
            + _ch(values, "CTRL_R_nose_wrinkleUpper-translateY")
        ),
        nasolabial=0.5
        * (
            _pos(_ch(values, "CTRL_L_nose_nasolabialDeepen-translateY"))
            + _pos(_ch(values, "CTRL_R_nose_nasolabialDeepen-translateY"))
        ),
        chin_raise=chin,
    )


def _require_pillow() -> Any:
    try:
        from PIL import Image
    except ImportError:
        raise ImportError("previews need Pillow: pip install 'emoface[plot]'") from None
    return Image


def _bezier(
    p0: tuple[float, float], c: tuple[float, float], p1: tuple[float, float], n: int = 16
) -> list[tuple[float, float]]:
    t = np.linspace(0.0, 1.0, n)[:, None]
    pts = (1 - t) ** 2 * np.array(p0) + 2 * (1 - t) * t * np.array(c) + t**2 * np.array(p1)
    return [tuple(p) for p in pts]


class FaceRenderer:
    """Draws ``FaceShape``s as RGB images of ``size_px`` x ``size_px``."""

    def __init__(self, size_px: int = MP4_SIZE_PX) -> None:
        if size_px < 64 or size_px % 2:
            raise ValueError(f"size_px must be an even number >= 64, got {size_px}")
        self.size_px = size_px
        self._image = _require_pillow()
        self._s = size_px * SUPERSAMPLE

    def _xy(self, x: float, y: float) -> tuple[float, float]:
        """Face units (origin at the face centre, y up, face ~2 wide) to canvas pixels."""
        half = self._s / 2
        return half + x * self._s * 0.36, half * 1.06 - y * self._s * 0.36

    def render(self, values: np.ndarray, caption: str = "", head: np.ndarray | None = None) -> Any:
        """One frame ``[174]`` -> a PIL RGB image.

        ``head`` (yaw, pitch, roll in degrees) turns, nods and tilts the drawn face.
        """
        from PIL import ImageDraw

        shape = face_shape(values)
        img = self._image.new("RGB", (self._s, self._s), BACKGROUND)
        draw = ImageDraw.Draw(img)
        self._head(draw, shape.mouth)
        for cx, cheek in ((-0.5, shape.cheek_raise_left), (0.5, shape.cheek_raise_right)):
            self._cheek(draw, cx, cheek)
        self._nose(draw, shape.nose_wrinkle)
        self._folds(draw, shape.nasolabial, shape.mouth)
        self._eye(draw, -0.45, shape.eye_left)
        self._eye(draw, 0.45, shape.eye_right)
        self._brow(draw, -0.45, -1.0, shape.brow_left)
        self._brow(draw, 0.45, 1.0, shape.brow_right)
        self._mouth(draw, shape.mouth)
        if head is not None and np.any(np.abs(head) > 0.05):
            img = self._pose(img, head)
        out = img.reduce(SUPERSAMPLE)  # box filter: as smooth as LANCZOS here, several times faster
        if caption:
            ImageDraw.Draw(out).text((8, self.size_px - 18), caption, fill=TEXT)
        return out

    def _pose(self, img: Any, head: np.ndarray) -> Any:
        """The head's rotation, as a 2D picture can show it.

        Roll tilts the image, yaw slides the face sideways (and narrows it a little), pitch
        slides it up or down.
        """
        yaw, pitch, roll = (float(v) for v in head)
        size = self._s
        # Roll + tilts the top of the head to the character's left: the viewer's right.
        img = img.rotate(-roll, resample=self._image.Resampling.BICUBIC, fillcolor=BACKGROUND)
        squeeze = math.cos(math.radians(yaw))
        width = max(2, int(round(size * squeeze)))
        img = img.resize((width, size), resample=self._image.Resampling.BILINEAR)
        canvas = self._image.new("RGB", (size, size), BACKGROUND)
        # Yaw + turns the face to the character's left: the viewer's right.
        dx = int(round((size - width) / 2 + 0.6 * size * math.sin(math.radians(yaw)) * 0.5))
        dy = int(round(-0.6 * size * math.sin(math.radians(pitch)) * 0.5))
        canvas.paste(img, (dx, dy))
        return canvas

    def _head(self, draw: Any, mouth: MouthShape) -> None:
        # Upper head: a fixed half ellipse; the jaw half follows the chin (drop and sideways).
        top = [(0.97 * np.cos(a), 0.15 + 1.1 * np.sin(a)) for a in np.linspace(0, np.pi, 40)]
        jaw = [
            (
                0.97 * np.cos(a) + mouth.shift_x * (1 - abs(np.cos(a))),
                0.15 + (1.1 + mouth.chin_drop) * np.sin(a),
            )
            for a in np.linspace(np.pi, 2 * np.pi, 40)
        ]
        draw.polygon(
            [self._xy(*p) for p in top + jaw], fill=SKIN, outline=OUTLINE, width=SUPERSAMPLE * 2
        )

    def _cheek(self, draw: Any, cx: float, raise_: float) -> None:
        if raise_ <= 0.05:
            return
        y = -0.05 + 0.1 * raise_
        pts = [self._xy(cx - 0.2, y), self._xy(cx, y + 0.07 * raise_), self._xy(cx + 0.2, y)]
        draw.line(pts, fill=SKIN_SHADE, width=SUPERSAMPLE * 4, joint="curve")

    def _nose(self, draw: Any, wrinkle: float) -> None:
        draw.line(
            [self._xy(0.0, 0.25), self._xy(-0.06, -0.12), self._xy(0.06, -0.14)],
            fill=SKIN_SHADE,
            width=SUPERSAMPLE * 3,
            joint="curve",
        )
        for k in range(int(np.clip(wrinkle, 0.0, 1.0) * 3 + 0.5)):
            y = 0.2 - 0.05 * k
            draw.line([self._xy(-0.1, y), self._xy(0.1, y)], fill=SKIN_SHADE, width=SUPERSAMPLE * 3)

    def _folds(self, draw: Any, depth: float, mouth: MouthShape) -> None:
        """Nasolabial folds: from beside the nose wings to just outside the mouth corners."""
        if depth <= 0.05:
            return
        width = SUPERSAMPLE * (2 + int(round(3 * min(depth, 1.0))))
        cy = -0.42
        for corner, side in ((mouth.left, -1.0), (mouth.right, 1.0)):
            start = (side * 0.14, -0.08)
            end = (corner[0] + side * 0.06, cy + corner[1] + 0.02)
            mid = (side * (0.22 + 0.05 * depth), 0.5 * (start[1] + end[1]))
            draw.line(
                [self._xy(*p) for p in _bezier(start, mid, end)],
                fill=SKIN_SHADE,
                width=width,
                joint="curve",
            )

    def _eye(self, draw: Any, cx: float, eye: EyeShape) -> None:
        cy, half_w = 0.3, 0.17
        # Eyeball, iris and pupil first; then skin-coloured lids cover all but the opening.
        draw.ellipse(
            [self._xy(cx - half_w, cy + 0.16), self._xy(cx + half_w, cy - 0.12)], fill=EYE_WHITE
        )
        ix, iy = cx + eye.iris_dx, cy + eye.iris_dy
        draw.ellipse(
            [self._xy(ix - 0.075, iy + 0.075), self._xy(ix + 0.075, iy - 0.075)], fill=IRIS
        )
        draw.ellipse([self._xy(ix - 0.03, iy + 0.03), self._xy(ix + 0.03, iy - 0.03)], fill=PUPIL)
        inner, outer = (cx - half_w, cy), (cx + half_w, cy)
        upper = _bezier(inner, (cx, cy + 2 * eye.upper_open), outer)
        lower = _bezier(inner, (cx, cy - 2 * eye.lower_open), outer)
        pad = 0.04
        draw.polygon(
            [
                self._xy(cx - half_w - pad, cy),
                *(self._xy(*p) for p in upper),
                self._xy(cx + half_w + pad, cy),
                self._xy(cx + half_w + pad, cy + 0.2),
                self._xy(cx - half_w - pad, cy + 0.2),
            ],
            fill=SKIN,
        )
        draw.polygon(
            [
                self._xy(cx - half_w - pad, cy),
                *(self._xy(*p) for p in lower),
                self._xy(cx + half_w + pad, cy),
                self._xy(cx + half_w + pad, cy - 0.16),
                self._xy(cx - half_w - pad, cy - 0.16),
            ],
            fill=SKIN,
        )
        draw.line([self._xy(*p) for p in upper], fill=OUTLINE, width=SUPERSAMPLE * 3, joint="curve")

    def _brow(self, draw: Any, cx: float, outward: float, brow: BrowShape) -> None:
        base = 0.55
        inner = (cx - outward * (0.17 - brow.inner_shift), base + brow.inner_up)
        outer = (cx + outward * 0.2, base - 0.03 + brow.outer_up)
        mid = (cx + outward * 0.02, base + 0.05 + 0.5 * (brow.inner_up + brow.outer_up))
        draw.line(
            [self._xy(*p) for p in _bezier(inner, mid, outer)],
            fill=BROW,
            width=SUPERSAMPLE * 7,
            joint="curve",
        )

    def _mouth(self, draw: Any, m: MouthShape) -> None:
        cy = -0.42  # rest height of the mouth centre
        left = (m.left[0], cy + m.left[1])
        right = (m.right[0], cy + m.right[1])
        centre_x = 0.5 * (left[0] + right[0])
        upper_y, lower_y = cy + m.upper_lip_y, cy + m.lower_lip_y
        lower_x = m.shift_x  # the lower lip rides on the jaw
        thick = 0.05 * m.lip_thickness
        upper_inner = _through(left, (centre_x, upper_y), right)
        lower_inner = _through(left, (lower_x, lower_y), right)
        upper_outer = _through(left, (centre_x, upper_y + thick), right)
        lower_outer = _through(left, (lower_x, lower_y - 1.2 * thick), right)
        if m.gap > 0.003:
            draw.polygon([self._xy(*p) for p in upper_inner + lower_inner[::-1]], fill=MOUTH_INSIDE)
            teeth = _through(left, (centre_x, upper_y - min(0.06, 0.6 * m.gap)), right)
            draw.polygon([self._xy(*p) for p in upper_inner + teeth[::-1]], fill=TEETH)
        draw.polygon([self._xy(*p) for p in upper_outer + upper_inner[::-1]], fill=LIP)
        draw.polygon([self._xy(*p) for p in lower_inner + lower_outer[::-1]], fill=LIP)


def _through(
    p0: tuple[float, float], mid: tuple[float, float], p1: tuple[float, float]
) -> list[tuple[float, float]]:
    """A quadratic curve from ``p0`` to ``p1`` that passes through ``mid`` at its middle."""
    control = (2 * mid[0] - 0.5 * (p0[0] + p1[0]), 2 * mid[1] - 0.5 * (p0[1] + p1[1]))
    return _bezier(p0, control, p1)


def frame_times(n_frames: int, source_fps: float, out_fps: float) -> np.ndarray:
    """Source frame index shown at each output frame (nearest earlier), covering the clip."""
    duration_s = n_frames / source_fps
    n_out = max(1, int(round(duration_s * out_fps)))
    idx = np.floor(np.arange(n_out) / out_fps * source_fps + 1e-6).astype(np.int64)
    return np.clip(idx, 0, max(n_frames - 1, 0))


Caption = str | Callable[[float], str] | None  # fixed text, or the text at a time in seconds
Progress = Callable[[int, int], None] | None  # (frames done, frames in all)


def _caption_at(caption: Caption, t: float) -> str:
    if caption is None:
        return ""
    text = caption(t) if callable(caption) else caption
    return f"{t:6.2f} s  {text}".rstrip()


def emotion_caption(animation: Animation) -> Caption:
    """The emotion active at each moment, from the bake's emotion spec.

    "happy", or a blend "happy 60% sad 40%" while a timeline fades; None when the bake names none.
    """
    from emoface_core.emotion import EMOTIONS, parse_emotion_spec

    spec = animation.metadata.get("emotion")
    if not spec:
        return None
    try:
        weights = parse_emotion_spec(str(spec)).weights(animation.n_frames, animation.fps)
    except ValueError:
        return str(spec)

    def at(t: float) -> str:
        row = weights[min(len(weights) - 1, max(0, int(t * animation.fps)))]
        order = np.argsort(row)[::-1]
        if row[order[1]] < 0.05:
            return EMOTIONS[order[0]]
        return " ".join(f"{EMOTIONS[k]} {100 * row[k]:.0f}%" for k in order[:2])

    return at


def render_frames(
    animation: Animation,
    out_fps: float,
    size_px: int,
    *,
    caption: Caption = None,
    progress: Progress = None,
) -> Iterator[Any]:
    """PIL images of the animation resampled to ``out_fps``."""
    renderer = FaceRenderer(size_px)
    times = frame_times(animation.n_frames, animation.fps, out_fps)
    head = animation.head
    for k, i in enumerate(times):
        pose = None if head is None else head[i]
        yield renderer.render(animation.values[i], _caption_at(caption, k / out_fps), pose)
        if progress is not None:
            progress(k + 1, len(times))


def write_sheet(
    animation: Animation,
    path: str | Path,
    *,
    every_ms: float = 200.0,
    columns: int = 8,
    size_px: int = 192,
    caption: Caption = None,
) -> Path:
    """One PNG contact sheet: a frame every ``every_ms`` in a grid, each captioned.

    For reviewing many lines at a glance.
    """
    image_module = _require_pillow()
    renderer = FaceRenderer(size_px)
    step = max(1, int(round(every_ms / 1000 * animation.fps)))
    picks = list(range(0, animation.n_frames, step)) or [0]
    rows = (len(picks) + columns - 1) // columns
    sheet = image_module.new("RGB", (columns * size_px, rows * size_px), BACKGROUND)
    for k, i in enumerate(picks):
        values = animation.values[min(i, animation.n_frames - 1)] if animation.n_frames else None
        if values is None:
            break
        pose = None if animation.head is None else animation.head[min(i, animation.n_frames - 1)]
        tile = renderer.render(values, _caption_at(caption, i / animation.fps), pose)
        sheet.paste(tile, ((k % columns) * size_px, (k // columns) * size_px))
    path = Path(path)
    tmp = _temp_sibling(path)
    try:
        sheet.save(tmp, format="PNG")
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


def write_gif(
    animation: Animation,
    path: str | Path,
    *,
    fps: float = GIF_FPS,
    size_px: int = GIF_SIZE_PX,
    caption: Caption = None,
    progress: Progress = None,
) -> Path:
    """Write a looping GIF preview atomically.

    Raises:
        ValueError: ``fps`` does not give whole-centisecond frame delays.
    """
    delay_cs = 100.0 / fps
    if abs(delay_cs - round(delay_cs)) > 1e-6 or round(delay_cs) < 2:
        raise ValueError(f"GIF fps must be 50, 25, 20, 10...(100/fps whole, >= 2), got {fps:g}")
    frames = [
        im.convert("P", palette=_adaptive(), colors=64)
        for im in render_frames(animation, fps, size_px, caption=caption, progress=progress)
    ]
    path = Path(path)
    tmp = _temp_sibling(path)
    try:
        frames[0].save(
            tmp,
            format="GIF",
            save_all=True,
            append_images=frames[1:],
            duration=int(round(delay_cs)) * 10,
            loop=0,
            optimize=False,
            disposal=1,
        )
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


def _adaptive() -> Any:
    return _require_pillow().Palette.ADAPTIVE


def _temp_sibling(path: Path) -> str:
    """An empty temporary file next to ``path``, with the permissions a new file would get.

    ``mkstemp`` creates files readable by their owner only; a preview should be as readable as
    any other file the user creates (umask), e.g. by colleagues on a shared drive.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, default_file_mode())
    return tmp


@lru_cache(maxsize=4)
def _video_encoder(ffmpeg: str) -> list[str]:
    """H.264 when this ffmpeg has libx264, else its built-in MPEG-4 encoder."""
    try:
        listing = subprocess.run(
            [ffmpeg, "-hide_banner", "-encoders"], capture_output=True, text=True, timeout=20
        ).stdout
    except (OSError, subprocess.SubprocessError):
        listing = ""
    if " libx264 " in listing:
        return ["-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p"]
    return ["-c:v", "mpeg4", "-q:v", "3", "-pix_fmt", "yuv420p"]


def find_ffmpeg() -> str | None:
    """Path of ``ffmpeg`` (``EMOFACE_FFMPEG`` overrides PATH), or None."""
    return os.environ.get("EMOFACE_FFMPEG") or shutil.which("ffmpeg")


def write_mp4(
    animation: Animation,
    path: str | Path,
    *,
    audio_path: str | Path | None = None,
    fps: float = 60.0,
    size_px: int = MP4_SIZE_PX,
    caption: Caption = None,
    ffmpeg: str | None = None,
    progress: Progress = None,
) -> Path:
    """Write an MP4 preview atomically, muxing ``audio_path`` when given.

    Raises:
        PreviewError: ffmpeg is missing or fails (its last stderr line is in the message).
    """
    ffmpeg = ffmpeg or find_ffmpeg()
    if not ffmpeg:
        raise PreviewError(
            f"{path}: writing .mp4 needs ffmpeg (not found on PATH): install it (Debian/Ubuntu: "
            "apt-get install ffmpeg; macOS: brew install ffmpeg; Windows: winget install ffmpeg), "
            "point EMOFACE_FFMPEG at it, or write a .gif"
        )
    path = Path(path)
    tmp = _temp_sibling(path)
    cmd = [
        ffmpeg,
        "-hide_banner",
        "-loglevel",
        "error",
        "-y",
        "-f",
        "rawvideo",
        "-pix_fmt",
        "rgb24",
        "-s",
        f"{size_px}x{size_px}",
        "-r",
        f"{fps:g}",
        "-i",
        "-",
    ]
    if audio_path is not None:
        cmd += [
            "-i",
            str(audio_path),
            "-map",
            "0:v:0",
            "-map",
            "1:a:0",
            "-c:a",
            "aac",
            "-b:a",
            "160k",
            "-shortest",
        ]
    cmd += [*_video_encoder(ffmpeg), "-movflags", "+faststart", "-f", "mp4", tmp]
    with tempfile.TemporaryFile() as err:
        try:
            proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=err)
        except OSError as e:
            Path(tmp).unlink(missing_ok=True)
            raise PreviewError(f"{path}: cannot run ffmpeg at {ffmpeg} ({e.strerror or e})") from e
        try:
            assert proc.stdin is not None
            frames = render_frames(animation, fps, size_px, caption=caption, progress=progress)
            for image in frames:
                proc.stdin.write(image.tobytes())
            proc.stdin.close()
            code = proc.wait()
            if code != 0:
                err.seek(0)
                lines = err.read().decode("utf-8", "replace").strip().splitlines()
                raise PreviewError(
                    f"{path}: ffmpeg failed (exit {code}): {lines[-1] if lines else 'no message'}"
                )
            os.replace(tmp, path)
        except BrokenPipeError:
            proc.wait()
            err.seek(0)
            lines = err.read().decode("utf-8", "replace").strip().splitlines()
            raise PreviewError(
                f"{path}: ffmpeg stopped early: {lines[-1] if lines else 'no message'}"
            ) from None
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            Path(tmp).unlink(missing_ok=True)
    return path


def write_preview(
    animation: Animation,
    path: str | Path,
    *,
    audio_path: str | Path | None = None,
    fps: float | None = None,
    size_px: int | None = None,
    caption: Caption = None,
    progress: Progress = None,
    every_ms: float = 200.0,
) -> Path:
    """Write a .gif or .mp4 preview, or a .png contact sheet, chosen by the extension.

    Audio only goes into MP4; ``every_ms`` is the sheet's spacing.

    Raises:
        ValueError: unknown extension.
        PreviewError: the MP4 cannot be encoded.
    """
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt == "gif":
        if audio_path is not None:
            log.info("%s: a GIF has no sound; the audio is not included", path)
        return write_gif(
            animation,
            path,
            fps=fps or GIF_FPS,
            size_px=size_px or GIF_SIZE_PX,
            caption=caption,
            progress=progress,
        )
    if fmt == "png":
        return write_sheet(
            animation, path, every_ms=every_ms, size_px=size_px or 192, caption=caption
        )
    if fmt == "mp4":
        return write_mp4(
            animation,
            path,
            audio_path=audio_path,
            fps=fps or animation.fps,
            size_px=size_px or MP4_SIZE_PX,
            caption=caption,
            progress=progress,
        )
    raise ValueError(
        f"{path}: unknown preview extension {path.suffix or '(none)'}; use .gif, .mp4 or .png "
        "(a contact sheet)"
    )
