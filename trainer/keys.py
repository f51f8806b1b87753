"""Every Redis key and channel nndl uses, built in one place.

Keys of one job share the hash tag `{job:ID}` and keys of one model `{model:NAME}`,
so each multi-key transaction stays in one slot and a Redis Cluster can hold them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_PREFIX = "nndl"
# What a model (or alias) may be called: it goes into Redis keys and store paths as is.
MODEL_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")


def text(value: bytes | str) -> str:
    """A Redis reply as str, whether or not the client decodes responses."""
    return value.decode() if isinstance(value, bytes) else value


@dataclass(frozen=True)
class Keys:
    prefix: str = DEFAULT_PREFIX

    # -- job queue
    @property
    def jobs_stream(self) -> str:
        """Stream of {job: ID} entries; an entry lives until its job ends (then XDEL)."""
        return f"{self.prefix}:jobs:stream"

    group = "workers"  # the consumer group every worker reads the stream through

    @property
    def jobs_index(self) -> str:
        """Sorted set of job ids by creation time (for listing)."""
        return f"{self.prefix}:jobs:index"

    def job(self, job_id: str) -> str:
        """Hash: the JobRecord; expires record_ttl_s after the job ends."""
        return f"{self.prefix}:{{job:{job_id}}}:record"

    def job_events(self, job_id: str) -> str:
        """Stream of the job's events, which WatchJob follows; expires with the record."""
        return f"{self.prefix}:{{job:{job_id}}}:events"

    def job_checkpoint(self, job_id: str) -> str:
        """String: the last epoch's checkpoint; deleted when the job ends."""
        return f"{self.prefix}:{{job:{job_id}}}:checkpoint"

    # -- model registry
    @property
    def models(self) -> str:
        """Set of model names; outside every model's hash slot, so updated on its own."""
        return f"{self.prefix}:models"

    def model_next_version(self, name: str) -> str:
        """Counter INCRed to allocate version numbers; a number is never given twice."""
        return f"{self.prefix}:{{model:{name}}}:next"

    def model_versions(self, name: str) -> str:
        """Hash of version -> JSON summary; a version is visible once it is here."""
        return f"{self.prefix}:{{model:{name}}}:versions"

    def model_aliases(self, name: str) -> str:
        """Hash of alias -> version; WATCHed while a promotion compares accuracies."""
        return f"{self.prefix}:{{model:{name}}}:aliases"

    def model_by_job(self, name: str) -> str:
        """Hash of job id -> version, reserved before the document is written.

        Makes publishing a retried job idempotent: every attempt fills the same number.
        """
        return f"{self.prefix}:{{model:{name}}}:by-job"

    def model_blob(self, name: str, version: int) -> str:
        """A document in the Redis store, written once with SET NX."""
        return f"{self.prefix}:{{model:{name}}}:blob:{version}"

    @property
    def registry_channel(self) -> str:
        """Pub/sub channel announcing new versions and alias moves."""
        return f"{self.prefix}:registry:events"
