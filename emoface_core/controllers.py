"""The 174 MetaHuman face-board controller channels EmoFace predicts, in dataset order.

Names use the Maya form ``CONTROL-attribute`` of the authors' release: ``CTRL_C_jaw-translateY`` is
the Y axis of the 2D control ``CTRL_C_jaw``. Column ``i`` of every baked ``.txt`` file is
``CONTROLLER_NAMES[i]``. The channel groups used for evaluation live here too, so training,
evaluation and the procedural engine agree on them.
"""

from __future__ import annotations

CONTROLLER_NAMES: tuple[str, ...] = (
    "CTRL_C_eye-translateX",
    "CTRL_C_eye-translateY",
    "CTRL_C_eye_parallelLook-translateY",
    "CTRL_C_jaw-translateX",
    "CTRL_C_jaw-translateY",
    "CTRL_C_jaw_fwdBack-translateY",
    "CTRL_C_jaw_openExtreme-translateY",
    "CTRL_C_mouth-translateX",
    "CTRL_C_mouth-translateY",
    "CTRL_C_mouth_lipShiftD-translateY",
    "CTRL_C_mouth_lipShiftU-translateY",
    "CTRL_C_mouth_stickyD-translateY",
    "CTRL_C_mouth_stickyU-translateY",
    "CTRL_C_neck_swallow-translateY",
    "CTRL_C_teethD-translateX",
    "CTRL_C_teethD-translateY",
    "CTRL_C_teethU-translateX",
    "CTRL_C_teethU-translateY",
    "CTRL_C_teeth_fwdBackD-translateY",
    "CTRL_C_teeth_fwdBackU-translateY",
    "CTRL_C_tongue-translateX",
    "CTRL_C_tongue-translateY",
    "CTRL_C_tongue_inOut-translateY",
    "CTRL_C_tongue_narrowWide-translateY",
    "CTRL_C_tongue_press-translateY",
    "CTRL_C_tongue_roll-translateX",
    "CTRL_C_tongue_roll-translateY",
    "CTRL_C_tongue_tip-translateX",
    "CTRL_C_tongue_tip-translateY",
    "CTRL_L_brow_down-translateY",
    "CTRL_L_brow_lateral-translateY",
    "CTRL_L_brow_raiseIn-translateY",
    "CTRL_L_brow_raiseOut-translateY",
    "CTRL_L_ear_up-translateY",
    "CTRL_L_eye-translateX",
    "CTRL_L_eye-translateY",
    "CTRL_L_eye_blink-translateY",
    "CTRL_L_eye_cheekRaise-translateY",
    "CTRL_L_eye_eyelidD-translateY",
    "CTRL_L_eye_eyelidU-translateY",
    "CTRL_L_eye_faceScrunch-translateY",
    "CTRL_L_eye_lidPress-translateY",
    "CTRL_L_eye_pupil-translateY",
    "CTRL_L_eye_squintInner-translateY",
    "CTRL_L_eyelashes_tweakerIn-translateY",
    "CTRL_L_eyelashes_tweakerOut-translateY",
    "CTRL_L_jaw_ChinRaiseD-translateY",
    "CTRL_L_jaw_ChinRaiseU-translateY",
    "CTRL_L_jaw_chinCompress-translateY",
    "CTRL_L_jaw_clench-translateY",
    "CTRL_L_mouth_corner-translateX",
    "CTRL_L_mouth_corner-translateY",
    "CTRL_L_mouth_cornerDepress-translateY",
    "CTRL_L_mouth_cornerPull-translateY",
    "CTRL_L_mouth_cornerSharpnessD-translateY",
    "CTRL_L_mouth_cornerSharpnessU-translateY",
    "CTRL_L_mouth_dimple-translateY",
    "CTRL_L_mouth_funnelD-translateY",
    "CTRL_L_mouth_funnelU-translateY",
    "CTRL_L_mouth_lipBiteD-translateY",
    "CTRL_L_mouth_lipBiteU-translateY",
    "CTRL_L_mouth_lipSticky-translateY",
    "CTRL_L_mouth_lipsBlow-translateY",
    "CTRL_L_mouth_lipsPressU-translateY",
    "CTRL_L_mouth_lipsRollD-translateY",
    "CTRL_L_mouth_lipsRollU-translateY",
    "CTRL_L_mouth_lipsTogetherD-translateY",
    "CTRL_L_mouth_lipsTogetherU-translateY",
    "CTRL_L_mouth_lipsTowardsTeethD-translateY",
    "CTRL_L_mouth_lipsTowardsTeethU-translateY",
    "CTRL_L_mouth_lowerLipDepress-translateY",
    "CTRL_L_mouth_pressD-translateY",
    "CTRL_L_mouth_pressU-translateY",
    "CTRL_L_mouth_purseD-translateY",
    "CTRL_L_mouth_purseU-translateY",
    "CTRL_L_mouth_pushPullD-translateY",
    "CTRL_L_mouth_pushPullU-translateY",
    "CTRL_L_mouth_sharpCornerPull-translateY",
    "CTRL_L_mouth_stickyInnerD-translateY",
    "CTRL_L_mouth_stickyInnerU-translateY",
    "CTRL_L_mouth_stickyOuterD-translateY",
    "CTRL_L_mouth_stickyOuterU-translateY",
    "CTRL_L_mouth_stretch-translateY",
    "CTRL_L_mouth_stretchLipsClose-translateY",
    "CTRL_L_mouth_suckBlow-translateY",
    "CTRL_L_mouth_thicknessD-translateY",
    "CTRL_L_mouth_thicknessU-translateY",
    "CTRL_L_mouth_tightenD-translateY",
    "CTRL_L_mouth_tightenU-translateY",
    "CTRL_L_mouth_towardsD-translateY",
    "CTRL_L_mouth_towardsU-translateY",
    "CTRL_L_mouth_upperLipRaise-translateY",
    "CTRL_L_neck_mastoidContract-translateY",
    "CTRL_L_neck_stretch-translateY",
    "CTRL_L_nose-translateX",
    "CTRL_L_nose-translateY",
    "CTRL_L_nose_nasolabialDeepen-translateY",
    "CTRL_L_nose_wrinkleUpper-translateY",
    "CTRL_R_brow_down-translateY",
    "CTRL_R_brow_lateral-translateY",
    "CTRL_R_brow_raiseIn-translateY",
    "CTRL_R_brow_raiseOut-translateY",
    "CTRL_R_ear_up-translateY",
    "CTRL_R_eye-translateX",
    "CTRL_R_eye-translateY",
    "CTRL_R_eye_blink-translateY",
    "CTRL_R_eye_cheekRaise-translateY",
    "CTRL_R_eye_eyelidD-translateY",
    "CTRL_R_eye_eyelidU-translateY",
    "CTRL_R_eye_faceScrunch-translateY",
    "CTRL_R_eye_lidPress-translateY",
    "CTRL_R_eye_pupil-translateY",
    "CTRL_R_eye_squintInner-translateY",
    "CTRL_R_eyelashes_tweakerIn-translateY",
    "CTRL_R_eyelashes_tweakerOut-translateY",
    "CTRL_R_jaw_ChinRaiseD-translateY",
    "CTRL_R_jaw_ChinRaiseU-translateY",
    "CTRL_R_jaw_chinCompress-translateY",
    "CTRL_R_jaw_clench-translateY",
    "CTRL_R_mouth_corner-translateX",
    "CTRL_R_mouth_corner-translateY",
    "CTRL_R_mouth_cornerDepress-translateY",
    "CTRL_R_mouth_cornerPull-translateY",
    "CTRL_R_mouth_cornerSharpnessD-translateY",
    "CTRL_R_mouth_cornerSharpnessU-translateY",
    "CTRL_R_mouth_dimple-translateY",
    "CTRL_R_mouth_funnelD-translateY",
    "CTRL_R_mouth_funnelU-translateY",
    "CTRL_R_mouth_lipBiteD-translateY",
    "CTRL_R_mouth_lipBiteU-translateY",
    "CTRL_R_mouth_lipSticky-translateY",
    "CTRL_R_mouth_lipsBlow-translateY",
    "CTRL_R_mouth_lipsPressU-translateY",
    "CTRL_R_mouth_lipsRollD-translateY",
    "CTRL_R_mouth_lipsRollU-translateY",
    "CTRL_R_mouth_lipsTogetherD-translateY",
    "CTRL_R_mouth_lipsTogetherU-translateY",
    "CTRL_R_mouth_lipsTowardsTeethD-translateY",
    "CTRL_R_mouth_lipsTowardsTeethU-translateY",
    "CTRL_R_mouth_lowerLipDepress-translateY",
    "CTRL_R_mouth_pressD-translateY",
    "CTRL_R_mouth_pressU-translateY",
    "CTRL_R_mouth_purseD-translateY",
    "CTRL_R_mouth_purseU-translateY",
    "CTRL_R_mouth_pushPullD-translateY",
    "CTRL_R_mouth_pushPullU-translateY",
    "CTRL_R_mouth_sharpCornerPull-translateY",
    "CTRL_R_mouth_stickyInnerD-translateY",
    "CTRL_R_mouth_stickyInnerU-translateY",
    "CTRL_R_mouth_stickyOuterD-translateY",
    "CTRL_R_mouth_stickyOuterU-translateY",
    "CTRL_R_mouth_stretch-translateY",
    "CTRL_R_mouth_stretchLipsClose-translateY",
    "CTRL_R_mouth_suckBlow-translateY",
    "CTRL_R_mouth_thicknessD-translateY",
    "CTRL_R_mouth_thicknessU-translateY",
    "CTRL_R_mouth_tightenD-translateY",
    "CTRL_R_mouth_tightenU-translateY",
    "CTRL_R_mouth_towardsD-translateY",
    "CTRL_R_mouth_towardsU-translateY",
    "CTRL_R_mouth_upperLipRaise-translateY",
    "CTRL_R_neck_mastoidContract-translateY",
    "CTRL_R_neck_stretch-translateY",
    "CTRL_R_nose-translateX",
    "CTRL_R_nose-translateY",
    "CTRL_R_nose_nasolabialDeepen-translateY",
    "CTRL_R_nose_wrinkleUpper-translateY",
    "CTRL_lookAtSwitch-translateY",
    "CTRL_neckCorrectivesMultiplyerD-translateY",
    "CTRL_neckCorrectivesMultiplyerM-translateY",
    "CTRL_neckCorrectivesMultiplyerU-translateY",
    "CTRL_neck_digastricUpDown-translateY",
    "CTRL_neck_throatExhaleInhale-translateY",
    "CTRL_neck_throatUpDown-translateY",
)
N_CONTROLLERS = len(CONTROLLER_NAMES)  # 174

CONTROLLER_INDEX: dict[str, int] = {name: i for i, name in enumerate(CONTROLLER_NAMES)}

GAZE_X = CONTROLLER_INDEX["CTRL_C_eye-translateX"]  # 0
GAZE_Y = CONTROLLER_INDEX["CTRL_C_eye-translateY"]  # 1
JAW_OPEN = CONTROLLER_INDEX["CTRL_C_jaw-translateY"]  # 4
BLINK_L = CONTROLLER_INDEX["CTRL_L_eye_blink-translateY"]  # 36
BLINK_R = CONTROLLER_INDEX["CTRL_R_eye_blink-translateY"]  # 105


def control_of(channel: str) -> str:
    """Return the control part of a channel name (``CTRL_C_jaw-translateY`` -> ``CTRL_C_jaw``)."""
    return channel.rsplit("-", 1)[0]


# Controls that have both a -translateX and a -translateY channel are the 2D board controls.
TWO_D_CONTROLS: tuple[str, ...] = tuple(
    sorted({control_of(n) for n in CONTROLLER_NAMES if n.endswith("-translateX")})
)

# Channels whose board range is [-1, 1]: the 2D controls and the signed sliders that split into
# two curves by sign (see shared reference 3.2). Everything else is a [0, 1] slider.
_SIGNED_SLIDER_PARTS = (
    "_eye_blink",
    "_eye_eyelidU",
    "_eye_eyelidD",
    "_eye_pupil",
    "_eyelashes_tweaker",
    "_mouth_lipsRoll",
    "_mouth_pushPull",
    "_mouth_thickness",
    "_mouth_cornerSharpness",
    "_mouth_suckBlow",
    "_jaw_fwdBack",
    "_mouth_lipShift",
    "_tongue_inOut",
    "_tongue_narrowWide",
    "_teeth_fwdBack",
    "neck_digastricUpDown",
    "neck_throatUpDown",
    "neck_throatExhaleInhale",
)
SIGNED_CHANNELS: frozenset[str] = frozenset(
    n
    for n in CONTROLLER_NAMES
    if control_of(n) in TWO_D_CONTROLS or any(part in n for part in _SIGNED_SLIDER_PARTS)
)


def channel_range(channel: str) -> tuple[float, float]:
    """Return the board range of a channel: ``(-1, 1)`` for signed ones, else ``(0, 1)``."""
    return (-1.0, 1.0) if channel in SIGNED_CHANNELS else (0.0, 1.0)


def _group(*parts: str) -> tuple[int, ...]:
    return tuple(
        i for i, n in enumerate(CONTROLLER_NAMES) if any(p in control_of(n) for p in parts)
    )


# Evaluation groups (paper 5.1, Table 2). Mouth: jaw, mouth, lip, teeth and tongue controls.
# Eye: eye, eyelid, eyelash and brow controls (gaze included). Listed in docs/channels.md.
MOUTH_CHANNELS: tuple[int, ...] = _group("_jaw", "_mouth", "_lip", "_teeth", "_tongue")
EYE_CHANNELS: tuple[int, ...] = _group("_eye", "_brow")
