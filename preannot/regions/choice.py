"""Classifications of a whole task: Label Studio's ``choices``; the label is the chosen value,
so there is no geometry to convert or compare."""

from __future__ import annotations

from ..model import Choice
from .kind import RegionKind


class ChoiceKind(RegionKind):
    region = Choice
    control_tag = "Choices"
    option_tag = "Choice"
