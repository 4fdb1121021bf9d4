"""The metric names trouped exports (DESIGN.md, Metrics). Shared by the deploy checks."""
import re

# name -> labels besides `troupe`
METRICS = {
    "troupe_jobs_submitted_total": set(),
    "troupe_jobs_rejected_total": {"reason"},
    "troupe_jobs_completed_total": {"outcome"},
    "troupe_job_attempts_total": set(),
    "troupe_job_run_seconds": {"le"},
    "troupe_job_queue_wait_seconds": {"le"},
    "troupe_mailbox_depth": set(),
    "troupe_mailbox_capacity": set(),
    "troupe_actors": set(),
    "troupe_actors_busy": set(),
    "troupe_actor_restarts_total": set(),
    "troupe_circuit_state": set(),
    "troupe_circuit_transitions_total": {"to"},
    "troupe_autoscale_events_total": {"direction"},
    "troupe_build_info": {"version"},
    # The job store (docs/durability.md): one per process, no `troupe` label.
    "troupe_store_commit_seconds": {"le"},
    "troupe_store_jobs_per_commit": {"le"},
    "troupe_store_bytes": set(),
    "troupe_store_rows": {"state"},
    "troupe_store_expired_rows_total": set(),
    "troupe_store_recovered_jobs": {"state"},
    "troupe_store_recovery_seconds": set(),
    "troupe_store_orphaned_jobs": set(),
    "troupe_store_failed": set(),
    "troupe_store_available": set(),
    # The cluster gauges (docs/cluster.md): from the shared store, every
    # replica the same values; `troupe` on the first two, none on the last.
    "troupe_cluster_queue_depth": set(),
    "troupe_cluster_oldest_queued_seconds": set(),
    "troupe_cluster_replicas": set(),
}
HISTOGRAMS = {"troupe_job_run_seconds", "troupe_job_queue_wait_seconds",
              "troupe_store_commit_seconds", "troupe_store_jobs_per_commit"}


def base_name(name):
    """troupe_job_run_seconds_bucket -> troupe_job_run_seconds."""
    for h in HISTOGRAMS:
        if name in (h + "_bucket", h + "_sum", h + "_count"):
            return h
    return name


def metric_names(expr):
    """Every troupe_* metric name an expression mentions (label values excluded)."""
    no_strings = re.sub(r'"[^"]*"', '""', expr)
    return {base_name(m) for m in re.findall(r"\btroupe_[a-z_]+\b", no_strings)}
