"""`spec.source`: the pretrained agent to transfer from, or how to make one here.

An agent is given (`agent`: a store URI or folder, any stored agent, a multi-source
one included, or `auto`), or pretrained in the trial pods on one source task
(`task`), on several (`tasks`: one multi-source agent), or on every task but the
target (`task: all-but-target`, the leave-one-task-out agent). `agent` stays a free
location string with named special values: `auto`, and `zoo` (the pretrained agent of
the trainer's agent zoo that excludes the target, see `store.zoo`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, model_validator

from transfersearch_trainer.api.base import _Spec
from transfersearch_trainer.api.fields import (
    _NO_USERINFO_RULE,
    _S3_AGENT_RULE,
    DIGEST_PATTERN,
    AgentLocation,
)
from transfersearch_trainer.api.tasks import TASKS, TaskName, tasks_label

ALL_BUT_TARGET = "all-but-target"
ZOO = "zoo"  # source.agent: the zoo's agent pretrained on every task but the target
SourceTask = Literal[TaskName, "all-but-target"]  # one enum in the CRD, not a union


class SourceCandidate(_Spec):
    """One pretrained agent that `agent: auto` may choose."""

    agent: AgentLocation = Field(
        max_length=1024,
        description="Agent folder: s3:// agent-store URI or path.",
        json_schema_extra={"x-kubernetes-validations": [_NO_USERINFO_RULE, _S3_AGENT_RULE]},
    )
    digest: str | None = Field(
        None, pattern=DIGEST_PATTERN, description="sha256:<hex> of the weights."
    )
    task: TaskName | None = Field(None, description="The task the agent was trained on.")


class Source(_Spec):
    """The pretrained agent to transfer from, or how to make one."""

    # The CRD's CEL mirror of _consistent, so the API server refuses the same things.
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.agent) || self.agent != 'auto' || "
                    "(has(self.candidates) && size(self.candidates) > 0)",
                    "message": "source.agent is 'auto': list the agents to choose from "
                    "in source.candidates",
                    "fieldPath": ".candidates",
                },
                {
                    "rule": "!has(self.candidates) || size(self.candidates) == 0 || "
                    "(has(self.agent) && self.agent == 'auto')",
                    "message": "source.candidates is only used with source.agent: auto",
                    "fieldPath": ".candidates",
                },
                {
                    "rule": "!has(self.tasks) || size(self.tasks) == 0 || !has(self.task)",
                    "message": "source.tasks: give source.task (one source task) or "
                    "source.tasks (several), not both",
                    "fieldPath": ".tasks",
                },
                {
                    "rule": "!has(self.tasks) || "
                    "self.tasks.all(t, self.tasks.exists_one(u, u == t))",
                    "message": "source.tasks: a task is listed twice",
                    "fieldPath": ".tasks",
                },
            ]
        }
    )

    task: SourceTask | None = Field(
        None,
        description="Source task; an agent is pretrained on it when `agent` is not given. "
        "all-but-target: one agent pretrained on every task but spec.target.task.",
    )
    tasks: list[TaskName] = Field(
        default_factory=list,
        max_length=len(TASKS),
        description="Several source tasks: one multi-source agent is pretrained on them all "
        "when `agent` is not given (instead of `task`).",
    )
    agent: AgentLocation | None = Field(
        None,
        max_length=1024,
        description="Pretrained agent: s3:// agent-store URI or path of its folder (any stored "
        "agent, multi-source ones included), 'auto' to pick among `candidates` by task "
        "similarity, or 'zoo' for the trainer image's zoo agent pretrained on every task but "
        "the target.",
        json_schema_extra={"x-kubernetes-validations": [_NO_USERINFO_RULE, _S3_AGENT_RULE]},
    )
    digest: str | None = Field(
        None, pattern=DIGEST_PATTERN, description="Expected sha256 of the weights."
    )
    candidates: list[SourceCandidate] = Field(
        default_factory=list,
        max_length=32,
        description="Agents to choose from when agent is 'auto'.",
    )
    pretrain_steps: int = Field(
        20000, ge=0, le=10_000_000, description="Learner steps when pretraining the source here."
    )

    @model_validator(mode="after")
    def _consistent(self) -> Source:
        if self.agent == "auto" and not self.candidates:
            raise ValueError(
                "source.agent is 'auto': list the agents to choose from in source.candidates"
            )
        if self.candidates and self.agent != "auto":
            raise ValueError("source.candidates is only used with source.agent: auto")
        if self.tasks and self.task is not None:
            raise ValueError(
                "source.tasks: give source.task (one source task) or source.tasks (several), "
                "not both"
            )
        if len(set(self.tasks)) != len(self.tasks):
            raise ValueError("source.tasks: a task is listed twice")
        return self

    def pretrain_tasks(self, target: str | None) -> tuple[str, ...]:
        """The tasks an agent is pretrained on here (none when no task is given); with no
        target task (a dataset target) all-but-target is every task."""
        if self.tasks:
            return tuple(self.tasks)
        if self.task == ALL_BUT_TARGET:
            return tuple(t for t in TASKS if t != target)
        return (self.task,) if self.task is not None else ()

    def label(self, target: str | None) -> str | None:
        """The task label of the agent pretrained here (e.g. all_but_jigsaw), as stored."""
        tasks = self.pretrain_tasks(target)
        return tasks_label(tasks) if tasks else None
