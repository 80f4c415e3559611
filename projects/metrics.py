"""Series read from the database when /metrics is scraped (settings.METRICS_COLLECTORS): what
rows say now, which no process could count as it happens and keep right across restarts.

Five statements a scrape: a GROUP BY per resource table, the due rows per table through the
scan's own partial index (``<model>_due_idx``), and a count of the idle-stop events.
"""

from django.db.models import Count, Min
from django.utils import timezone
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from databases.models import Database
from fullstackagent.reconcile import not_leased
from fullstackagent.status import ResourceStatus
from projects.models import ResourceEvent
from sandboxes.models import Sandbox

RESOURCES = (("sandbox", Sandbox), ("database", Database))
# TransitionCause.IDLE's value: the idle auto-stop records each stop it makes as an event with it.
IDLE_CAUSE = "idle"


class PlatformStateCollector:
    """A prometheus-client collector: ``collect`` yields metric families made from queries."""

    def collect(self):
        now = timezone.now()
        resources = GaugeMetricFamily(
            "fullstackagent_resources", "Sandboxes and databases by status.", labels=["resource", "status"]
        )
        lag = GaugeMetricFamily(
            "fullstackagent_reconcile_lag_seconds",
            "How late the most overdue row is: now minus the oldest next_check_at of rows due and not "
            "leased (0 when none is due). Growing: no beat scans, or workers cannot keep up.",
            labels=["resource"],
        )
        due = GaugeMetricFamily(
            "fullstackagent_reconcile_due_rows", "Rows due for a step and not leased by a worker.", labels=["resource"]
        )
        for name, model in RESOURCES:
            counts = dict(model.objects.order_by().values_list("status").annotate(Count("id")))
            for status in ResourceStatus.values:
                resources.add_metric([name, status], counts.get(status, 0))
            overdue = (
                model.objects.filter(next_check_at__isnull=False, next_check_at__lte=now)
                .filter(not_leased(now))
                .aggregate(oldest=Min("next_check_at"), rows=Count("id"))
            )
            oldest = overdue["oldest"]
            lag.add_metric([name], (now - oldest).total_seconds() if oldest else 0.0)
            due.add_metric([name], overdue["rows"])
        idle_stops = CounterMetricFamily(
            "fullstackagent_idle_stops", "Resources stopped for being idle (events with cause idle).", labels=["resource"]
        )
        stopped = dict(
            ResourceEvent.objects.filter(cause=IDLE_CAUSE).order_by().values_list("resource_kind").annotate(Count("id"))
        )
        for name, _model in RESOURCES:
            idle_stops.add_metric([name], stopped.get(name, 0))
        yield from (resources, lag, due, idle_stops)
