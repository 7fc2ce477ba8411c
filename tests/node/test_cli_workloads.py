"""Pure parts of `shoal scale|rollout|top`: target parsing and kubectl's status wording."""

import click
import pytest

from shoal.cli import workloads


def dep(generation=2, observed=2, replicas=3, updated=3, total=3, available=3, conditions=()):
    return {"metadata": {"name": "web", "generation": generation},
            "spec": {"replicas": replicas},
            "status": {"observedGeneration": observed, "updatedReplicas": updated, "replicas": total,
                       "availableReplicas": available, "conditions": list(conditions)}}


def test_parse_target_forms():
    assert workloads.parse_target(("deployment/web",)) == ("deployments.apps", "deployment.apps", "web")
    assert workloads.parse_target(("rs", "web-1")) == ("replicasets.apps", "replicaset.apps", "web-1")
    with pytest.raises(click.UsageError, match='no support for "pod"'):
        workloads.parse_target(("pod/web",))


def test_rollout_status_messages():
    assert workloads.rollout_status(dep(observed=1))[0] == "Waiting for deployment spec update to be observed..."
    assert workloads.rollout_status(dep(updated=1)) == (
        'Waiting for deployment "web" rollout to finish: 1 out of 3 new replicas have been updated...', False)
    assert "2 old replicas are pending termination" in workloads.rollout_status(dep(total=5))[0]
    assert "1 of 3 updated replicas are available" in workloads.rollout_status(dep(available=1))[0]
    assert workloads.rollout_status(dep()) == ('deployment "web" successfully rolled out', True)
    with pytest.raises(click.ClickException, match="exceeded its progress deadline"):
        workloads.rollout_status(dep(updated=1, conditions=[
            {"type": "Progressing", "reason": "ProgressDeadlineExceeded", "status": "False"}]))


def test_top_formatting():
    assert workloads.format_cpu(2.6) == "3m"
    assert workloads.format_memory(13 * 1024 * 1024 + 5) == "13Mi"
