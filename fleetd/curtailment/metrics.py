"""Curtailment at scrape time: the mode, what is held off and why, actions, shed against target."""

from __future__ import annotations

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from fleetd.curtailment.settings import MODES


class CurtailmentCollector:
    def __init__(self, service) -> None:
        self.service = service

    def collect(self):
        service = self.service
        controller = service.controller
        mode = GaugeMetricFamily("fleetd_curtailment_mode", "1 for the curtailment mode in force", labels=["mode"])
        for name in MODES:
            mode.add_metric([name], 1.0 if name == service.config.mode else 0.0)
        yield mode
        held = GaugeMetricFamily(
            "fleetd_rig_curtailed",
            "1 for each rig fleetd holds off or to a lower power: why (unprofitable, price, window, demand, pinned) "
            "and where it is (stopping, off, resuming; limiting, limited, restoring; failed)",
            labels=["rig", "reason", "state"],
        )
        for name, curtailed in sorted(controller.curtailed.items()):
            held.add_metric([name, curtailed.reason, curtailed.state], 1.0)
        yield held
        for name, would, advice in (
            ("fleetd_rig_curtailment_advised", "have off", controller.advice),
            ("fleetd_rig_curtailment_limit_advised", "hold to a lower power target", controller.limit_advice),
        ):
            advised = GaugeMetricFamily(
                name, f"1 for each rig the controller would {would} now, in any mode, with the reason",
                labels=["rig", "reason"],
            )  # fmt: skip
            for rig, reason in sorted(advice.items()):
                advised.add_metric([rig, reason], 1.0)
            yield advised
        actions = CounterMetricFamily(
            "fleetd_curtailment_actions",
            "pyasic control calls made, by kind (stop, resume, limit, restore) and result (ok, failed)",
            labels=["kind", "result"],
        )  # fmt: skip
        for (kind, result), count in sorted(service.actions.items()):
            actions.add_metric([kind, result], count)
        yield actions
        yield GaugeMetricFamily("fleetd_curtailment_shed_watts",
                                "Draw shed: what the rigs off drew before, and the limited ones' draw above their target",
                                value=controller.shed_kw() * 1000)  # fmt: skip
        yield GaugeMetricFamily("fleetd_curtailment_target_watts",
                                "Draw the scheduled windows and demand response ask to shed now (0: none)",
                                value=controller.target_kw * 1000)  # fmt: skip
        yield CounterMetricFamily(
            "fleetd_curtailment_came_back", "Rigs that mined again while fleetd held them off", value=controller.came_back
        )
