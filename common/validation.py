"""The strict base of every config model, and one way to put a pydantic error in words."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, ValidationError


class Strict(BaseModel):
    """A frozen config table that refuses unknown keys."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def validation_problems(exc: ValidationError, top: str = "(top)") -> list[str]:
    """One ``key.path: message`` line per problem; ``top`` names a problem of the whole document."""
    problems = []
    for err in exc.errors(include_url=False):
        path = ".".join(str(p) for p in err["loc"]) or top
        problems.append(f"{path}: {err['msg']}")
    return problems
