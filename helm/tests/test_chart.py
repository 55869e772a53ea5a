"""The Helm chart, checked with Helm's own engine and Kubernetes' API schemas.

Run by `crates/agent/tests/deploy.rs` (so by `cargo xtask test`) with the tools venv's
Python, which has the pinned `helm-python-sdk` (Helm's Go SDK: lint, template, the values
schema) and `kubernetes-validate` (Kubernetes' OpenAPI schemas, offline):

    .tools/venv/bin/python helm/tests/test_chart.py -v

For the default values, each per-role values file and the zone layouts, it lints, renders
and strictly validates every resource against the oldest Kubernetes the chart supports and
the newest the schemas know, then checks the structure operators rely on: the kinds, the
ports, probes, environment, PodDisruptionBudgets, topology spread, zone wiring,
securityContext, ServiceMonitor and NOTES.txt. It also checks that the values schema and
the templates refuse what the agent would refuse.
"""

from __future__ import annotations

import copy
import pathlib
import unittest

import helm_python as helm
import kubernetes_validate
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "infinistream"
RELEASE = "demo"
NAMESPACE = "streams"
# The chart's kubeVersion floor and the newest schemas kubernetes-validate ships.
KUBE_VERSIONS = ["1.31.0", kubernetes_validate.utils.latest_version()]
AGENT_ROLES = ["proxy-produce", "proxy-consume", "proxy", "jobs"]
ZONE_LABEL = "topology.kubernetes.io/zone"
KEY = {"group": {"key": "test-group-key"}}


def merge(base: dict, extra: dict) -> dict:
    """Deep-merges `extra` into a copy of `base` (as Helm layers -f and --set)."""
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def values_file(name: str) -> dict:
    return yaml.safe_load((CHART / name).read_text())


def render(values: dict) -> tuple[list[dict], str]:
    """`helm template`: the resources, in order, and the rendered NOTES.txt."""
    with helm.Chart.load(CHART) as chart:
        manifests = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    docs: list[dict] = []
    notes = ""
    for path, text in sorted(manifests.items()):
        if path.endswith("NOTES.txt"):
            notes = text
            continue
        docs.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return docs, notes


def render_error(values: dict) -> str:
    with helm.Chart.load(CHART) as chart:
        try:
            chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
        except helm.HelmError as err:
            return str(err)
    raise AssertionError(f"rendering should have failed for {values}")


def by_kind(docs: list[dict], kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def env_of(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container.get("env", [])}


def selects(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


# The layouts every structural check runs on: (name, values).
LAYOUTS = {
    "default": KEY,
    "values-control-plane.yaml": merge(values_file("values-control-plane.yaml"), KEY),
    "values-proxy-produce.yaml": values_file("values-proxy-produce.yaml"),
    "values-proxy-consume.yaml": values_file("values-proxy-consume.yaml"),
    "values-jobs.yaml": values_file("values-jobs.yaml"),
    "zones": merge(
        KEY,
        {
            "zones": ["us-east-1a", "us-east-1b", "us-east-1c"],
            "serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
            "cache": {"diskBytes": "10GiB", "sizeLimit": "12Gi"},
        },
    ),
    "pinned-zone": merge(KEY, {"roles": {"jobs": {"zone": "eu-west-1b"}}}),
    "pod-label-zone": merge(KEY, {"zoneDetection": "podLabel", "roles": {"proxy": {"enabled": True}}}),
    "internal-tls": merge(
        KEY,
        {
            "internalTls": {
                "enabled": True,
                "secrets": {r: f"{r}-tls" for r in ("control-plane", "proxy-produce", "proxy-consume", "jobs")},
            }
        },
    ),
}


class LintRenderValidate(unittest.TestCase):
    def test_lint_is_clean(self) -> None:
        for name, values in LAYOUTS.items():
            with self.subTest(layout=name):
                report = helm.lint(CHART, values, strict=True, namespace=NAMESPACE)
                self.assertEqual(report["errors"], [], report)
                # Only the informational "icon is recommended" may remain.
                serious = [m for m in report["messages"] if m["severity"] >= 2]
                self.assertEqual(serious, [], report)

    def test_every_resource_passes_the_strict_kubernetes_schemas(self) -> None:
        for name, values in LAYOUTS.items():
            docs, _ = render(values)
            self.assertTrue(docs, name)
            for doc in docs:
                if doc["kind"] == "ServiceMonitor":
                    continue  # a CRD: checked in test_service_monitor
                for version in KUBE_VERSIONS:
                    with self.subTest(layout=name, resource=f"{doc['kind']}/{doc['metadata']['name']}", kube=version):
                        kubernetes_validate.validate(doc, version, strict=True)


class InternalTls(unittest.TestCase):
    """internalTls: each role mounts its own Secret and points the TLS settings at it."""

    def test_each_role_mounts_its_secret_and_sets_tls(self) -> None:
        docs, _ = render(LAYOUTS["internal-tls"])
        deployments = by_kind(docs, "Deployment")
        self.assertEqual(len(deployments), 4)
        for name, dep in deployments.items():
            with self.subTest(deployment=name):
                role = dep["metadata"]["labels"]["app.kubernetes.io/component"]
                pod = dep["spec"]["template"]["spec"]
                (container,) = pod["containers"]
                volumes = {v["name"]: v for v in pod["volumes"]}
                self.assertEqual(volumes["internal-tls"]["secret"]["secretName"], f"{role}-tls")
                mount = next(m for m in container["volumeMounts"] if m["name"] == "internal-tls")
                self.assertEqual(mount["mountPath"], "/etc/infinistream/tls")
                self.assertIs(mount["readOnly"], True)
                env = env_of(container)
                files = {e["value"] for e in container["env"] if e["name"].endswith(("_CERT", "_KEY", "_CA")) and "value" in e}
                self.assertTrue(files)
                self.assertTrue(all(f.startswith("/etc/infinistream/tls/") for f in files), files)
                if role == "control-plane":
                    self.assertEqual(env["INFINISTREAM_TLS_CERT"]["value"], "/etc/infinistream/tls/tls.crt")
                    self.assertEqual(env["INFINISTREAM_TLS_VERIFY"]["value"], "true")
                    self.assertEqual(env["INFINISTREAM_TLS_SERVER_NAME"]["value"], "demo-control-plane")
                else:
                    self.assertEqual(env["INFINISTREAM_CONTROL_PLANE"]["value"], "https://demo-control-plane:7070")
                    self.assertEqual(env["INFINISTREAM_CP_TLS_CA"]["value"], "/etc/infinistream/tls/ca.crt")
                    self.assertEqual(env["INFINISTREAM_PEER_TLS_CERT"]["value"], "/etc/infinistream/tls/tls.crt")
                    self.assertEqual(env["INFINISTREAM_PEER_TLS_VERIFY"]["value"], "true")
                    self.assertEqual(env["INFINISTREAM_PEER_TLS_SERVER_NAME"]["value"], "demo-peer")

    def test_off_by_default_and_a_missing_secret_is_refused(self) -> None:
        docs, _ = render(LAYOUTS["default"])
        for dep in by_kind(docs, "Deployment").values():
            (container,) = dep["spec"]["template"]["spec"]["containers"]
            self.assertFalse([e for e in container["env"] if "TLS" in e["name"]])
        values = merge(LAYOUTS["internal-tls"], {"internalTls": {"secrets": {"jobs": ""}}})
        self.assertIn("internalTls.secrets.jobs", render_error(values))


class Structure(unittest.TestCase):
    def agent_deployments(self, docs: list[dict]) -> dict[str, dict]:
        return {
            n: d
            for n, d in by_kind(docs, "Deployment").items()
            if d["metadata"]["labels"]["app.kubernetes.io/component"] != "control-plane"
        }

    def test_default_layout_kinds_and_names(self) -> None:
        docs, _ = render(LAYOUTS["default"])
        kinds = sorted((d["kind"], d["metadata"]["name"]) for d in docs)
        expected = sorted(
            [("Secret", "demo-group")]
            + [(k, "demo-control-plane") for k in ("Deployment", "Service", "PodDisruptionBudget")]
            + [(k, f"demo-{r}") for r in ("proxy-produce", "proxy-consume", "jobs") for k in ("Deployment", "Service", "PodDisruptionBudget")]
            + [("HorizontalPodAutoscaler", f"demo-{r}") for r in ("proxy-produce", "proxy-consume")]
        )
        self.assertEqual(kinds, expected)

    def test_agents_ports_probes_env_security(self) -> None:
        for name, values in LAYOUTS.items():
            docs, _ = render(values)
            merged = merge(yaml.safe_load((CHART / "values.yaml").read_text()), values)
            for dep_name, dep in self.agent_deployments(docs).items():
                with self.subTest(layout=name, deployment=dep_name):
                    role = dep["metadata"]["labels"]["app.kubernetes.io/component"]
                    self.assertIn(role, AGENT_ROLES)
                    pod = dep["spec"]["template"]["spec"]
                    (agent,) = pod["containers"]
                    self.assertEqual(agent["args"], ["agent", f"--roles={role}"])
                    ports = {p["name"]: p["containerPort"] for p in agent["ports"]}
                    self.assertEqual(ports, {"nats": 4222, "http": 8222, "peer": 9222})
                    self.assertEqual(agent["livenessProbe"]["httpGet"], {"path": "/healthz", "port": "http"})
                    self.assertEqual(agent["readinessProbe"]["httpGet"], {"path": "/readyz", "port": "http"})

                    env = env_of(agent)
                    self.assertEqual(env["INFINISTREAM_PORT"]["value"], "4222")
                    self.assertEqual(env["INFINISTREAM_HTTP_PORT"]["value"], "8222")
                    self.assertEqual(env["INFINISTREAM_PEER_PORT"]["value"], "9222")
                    self.assertEqual(env["INFINISTREAM_BATCH_WRITE"]["value"], "250")
                    self.assertEqual(env["INFINISTREAM_BUCKET_NAME"]["value"], merged["bucket"])
                    self.assertEqual(env["INFINISTREAM_CLIENT_ADVERTISE"]["valueFrom"]["fieldRef"]["fieldPath"], "status.podIP")
                    self.assertEqual(env["INFINISTREAM_GROUP_ID"]["value"], "default")
                    secret = env["INFINISTREAM_GROUP_KEY"]["valueFrom"]["secretKeyRef"]
                    self.assertEqual(secret["key"], "group-key")
                    cp = env["INFINISTREAM_CONTROL_PLANE"]["value"]
                    if merged["controlPlane"]["enabled"]:
                        scheme = "https" if merged["internalTls"]["enabled"] else "http"
                        self.assertEqual(cp, f"{scheme}://{merged['fullnameOverride'] or RELEASE}-control-plane:7070")
                        self.assertIn(("Secret", secret["name"]), [(d["kind"], d["metadata"]["name"]) for d in docs])
                    else:
                        self.assertEqual(cp, merged["controlPlane"]["url"])
                        self.assertEqual(secret["name"], merged["group"]["existingSecret"])

                    # Non-root, read-only root filesystem; writable only through emptyDirs.
                    self.assertIs(pod["automountServiceAccountToken"], False)
                    self.assertIs(pod["securityContext"]["runAsNonRoot"], True)
                    self.assertNotEqual(pod["securityContext"]["runAsUser"], 0)
                    sc = agent["securityContext"]
                    self.assertIs(sc["readOnlyRootFilesystem"], True)
                    self.assertIs(sc["allowPrivilegeEscalation"], False)
                    self.assertEqual(sc["capabilities"]["drop"], ["ALL"])
                    volumes = {v["name"]: v for v in pod["volumes"]}
                    mounts = {m["mountPath"]: m["name"] for m in agent["volumeMounts"]}
                    self.assertIn("/tmp", mounts)
                    data_dir = env["INFINISTREAM_DATA_DIR"]["value"]
                    self.assertIn(data_dir, mounts, "the data directory (zone cache disk tier) must be writable")
                    for path, mount in mounts.items():
                        if "secret" in volumes[mount]:
                            # Certificates: read-only.
                            self.assertTrue(
                                any(m["mountPath"] == path and m.get("readOnly") for m in agent["volumeMounts"]), path
                            )
                        else:
                            self.assertIn("emptyDir", volumes[mount])

    def test_pdb_spread_service_and_hpa_per_deployment(self) -> None:
        for name, values in LAYOUTS.items():
            docs, _ = render(values)
            pdbs = by_kind(docs, "PodDisruptionBudget")
            hpas = by_kind(docs, "HorizontalPodAutoscaler")
            services = by_kind(docs, "Service")
            deployments = by_kind(docs, "Deployment")
            for dep_name, dep in deployments.items():
                with self.subTest(layout=name, deployment=dep_name):
                    selector = dep["spec"]["selector"]["matchLabels"]
                    pod_labels = dep["spec"]["template"]["metadata"]["labels"]
                    self.assertTrue(selects(selector, pod_labels))
                    # No other Deployment's pods match this selector.
                    for other_name, other in deployments.items():
                        if other_name != dep_name:
                            self.assertFalse(selects(selector, other["spec"]["template"]["metadata"]["labels"]))
                    # Exactly one PDB, selecting exactly this Deployment's pods.
                    mine = [p for p in pdbs.values() if selects(p["spec"]["selector"]["matchLabels"], pod_labels)]
                    self.assertEqual(len(mine), 1, mine)
                    self.assertEqual(mine[0]["spec"]["selector"]["matchLabels"], selector)
                    self.assertEqual(mine[0]["spec"]["maxUnavailable"], 1)
                    # Spread across nodes always; across zones unless pinned to one zone.
                    pod = dep["spec"]["template"]["spec"]
                    spread = {c["topologyKey"]: c for c in pod["topologySpreadConstraints"]}
                    self.assertIn("kubernetes.io/hostname", spread)
                    pinned = "affinity" in pod
                    self.assertEqual(ZONE_LABEL in spread, not pinned)
                    for constraint in spread.values():
                        self.assertEqual(constraint["labelSelector"]["matchLabels"], selector)
                        self.assertEqual(constraint["whenUnsatisfiable"], "ScheduleAnyway")
                    # A Service reaches these pods.
                    self.assertTrue(any(selects(s["spec"]["selector"], pod_labels) for s in services.values()))
                    hpa = hpas.get(dep_name)
                    if hpa is not None:
                        self.assertNotIn("replicas", dep["spec"], "the HPA owns replicas")
                        self.assertEqual(hpa["spec"]["scaleTargetRef"]["name"], dep_name)
                        (metric,) = hpa["spec"]["metrics"]
                        self.assertEqual(metric["resource"]["name"], "cpu")
            for svc_name, svc in services.items():
                with self.subTest(layout=name, service=svc_name):
                    ports = {p["name"]: p["port"] for p in svc["spec"]["ports"]}
                    if svc["metadata"]["labels"]["app.kubernetes.io/component"] == "control-plane":
                        self.assertEqual(ports, {"grpc": 7070, "http": 8223})
                    else:
                        self.assertEqual(ports, {"nats": 4222, "http": 8222, "peer": 9222})
                        self.assertEqual(svc["spec"]["trafficDistribution"], "PreferClose")

    def test_default_zone_comes_from_instance_metadata(self) -> None:
        docs, notes = render(LAYOUTS["default"])
        for dep in self.agent_deployments(docs).values():
            (agent,) = dep["spec"]["template"]["spec"]["containers"]
            self.assertNotIn("INFINISTREAM_ZONE", env_of(agent), "unset: the agent asks the instance metadata")
            self.assertNotIn("affinity", dep["spec"]["template"]["spec"])
        self.assertIn("instance metadata", notes)

    def test_zones_render_one_deployment_per_role_and_zone(self) -> None:
        values = LAYOUTS["zones"]
        zones = values["zones"]
        docs, notes = render(values)
        deployments = self.agent_deployments(docs)
        roles = ["jobs", "proxy-consume", "proxy-produce"]
        self.assertEqual(sorted(deployments), sorted(f"demo-{r}-{z}" for r in roles for z in zones))
        for role in roles:
            for zone in zones:
                dep = deployments[f"demo-{role}-{zone}"]
                pod = dep["spec"]["template"]["spec"]
                (term,) = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
                self.assertEqual(term["matchExpressions"], [{"key": ZONE_LABEL, "operator": "In", "values": [zone]}])
                (agent,) = pod["containers"]
                env = env_of(agent)
                self.assertEqual(env["INFINISTREAM_ZONE"]["value"], zone)
                self.assertEqual(env["INFINISTREAM_CACHE_DISK_BYTES"]["value"], "10GiB")
                data = next(v for v in pod["volumes"] if v["name"] == "data")
                self.assertEqual(data["emptyDir"]["sizeLimit"], "12Gi")
                self.assertEqual(dep["spec"]["selector"]["matchLabels"]["infinistream.io/zone"], zone)
        services = by_kind(docs, "Service")
        for role in roles:
            self.assertIn(f"demo-{role}", services)
            for zone in zones:
                self.assertEqual(services[f"demo-{role}-{zone}"]["spec"]["selector"]["infinistream.io/zone"], zone)
        self.assertIn("infinistream_az=us-east-1a", notes)
        self.assertIn("nats://demo-proxy-consume-us-east-1b.streams.svc:4222", notes)

    def test_pinned_and_pod_label_zones(self) -> None:
        docs, _ = render(LAYOUTS["pinned-zone"])
        jobs = by_kind(docs, "Deployment")["demo-jobs"]["spec"]["template"]["spec"]
        (agent,) = jobs["containers"]
        self.assertEqual(env_of(agent)["INFINISTREAM_ZONE"]["value"], "eu-west-1b")
        (term,) = jobs["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
        self.assertEqual(term["matchExpressions"][0]["values"], ["eu-west-1b"])

        docs, _ = render(LAYOUTS["pod-label-zone"])
        deployments = self.agent_deployments(docs)
        self.assertIn("demo-proxy", deployments)
        for dep in deployments.values():
            (agent,) = dep["spec"]["template"]["spec"]["containers"]
            field = env_of(agent)["INFINISTREAM_ZONE"]["valueFrom"]["fieldRef"]["fieldPath"]
            self.assertEqual(field, f"metadata.labels['{ZONE_LABEL}']")

    def test_per_role_releases(self) -> None:
        docs, notes = render(LAYOUTS["values-control-plane.yaml"])
        self.assertEqual(self.agent_deployments(docs), {})
        self.assertIn("none in this release", notes)
        self.assertIn("infinistream-control-plane", by_kind(docs, "Service"))
        self.assertIn("infinistream-group", by_kind(docs, "Secret"))
        for role in ("proxy-produce", "proxy-consume", "jobs"):
            docs, notes = render(LAYOUTS[f"values-{role}.yaml"])
            self.assertEqual(list(self.agent_deployments(docs)), [f"infinistream-{role}"])
            self.assertEqual(by_kind(docs, "Secret"), {})
            self.assertIn("(installed elsewhere)", notes)

    def test_service_monitor(self) -> None:
        docs, _ = render(LAYOUTS["zones"])
        (monitor,) = by_kind(docs, "ServiceMonitor").values()
        self.assertEqual(monitor["apiVersion"], "monitoring.coreos.com/v1")
        self.assertEqual(monitor["metadata"]["labels"]["release"], "prometheus")
        (endpoint,) = monitor["spec"]["endpoints"]
        self.assertEqual((endpoint["port"], endpoint["path"]), ("http", "/metrics"))
        scraped = sorted(
            n for n, s in by_kind(docs, "Service").items() if selects(monitor["spec"]["selector"]["matchLabels"], s["metadata"]["labels"])
        )
        # One Service per role (not the per-zone ones, which would scrape each pod twice)
        # and the control plane's.
        self.assertEqual(scraped, ["demo-control-plane", "demo-jobs", "demo-proxy-consume", "demo-proxy-produce"])
        self.assertEqual(by_kind(render(KEY)[0], "ServiceMonitor"), {}, "off by default")

    def test_notes_show_how_to_connect_with_the_suffix(self) -> None:
        _, notes = render(LAYOUTS["default"])
        self.assertIn("nats://demo-proxy-produce.streams.svc:4222", notes)
        self.assertIn('--connection-name "orders-writer,infinistream_proxy_target=proxy-produce"', notes)
        self.assertIn(",infinistream_proxy_target=proxy-consume,infinistream_az=<zone>", notes)
        self.assertIn("kubectl -n streams port-forward svc/demo-proxy-produce", notes)


class Refusals(unittest.TestCase):
    """What the agent would refuse at start-up, the chart refuses at install."""

    def assert_schema_refuses(self, values: dict, message: str) -> None:
        values = merge(KEY, values)
        with helm.Chart.load(CHART) as chart:
            with self.assertRaises(helm.HelmValuesError) as caught:
                chart.validate_schema(values)
        self.assertIn(message, str(caught.exception))
        self.assertIn(message, render_error(values))
        report = helm.lint(CHART, values, strict=True)
        self.assertTrue(any(message in e for e in report["errors"]), report)

    def test_batch_window_bounds(self) -> None:
        self.assert_schema_refuses({"batchWriteMs": 20}, "/batchWriteMs")
        self.assert_schema_refuses({"batchWriteMs": 501}, "/batchWriteMs")
        for ok in (50, 500):
            with helm.Chart.load(CHART) as chart:
                chart.validate_schema(merge(KEY, {"batchWriteMs": ok}))

    def test_unknown_role(self) -> None:
        role = {"enabled": True, "replicas": 1, "autoscaling": {"enabled": False}}
        self.assert_schema_refuses({"roles": {"proxy-fetch": role}}, "proxy-fetch")

    def test_other_bounds(self) -> None:
        self.assert_schema_refuses({"ports": {"client": 70000}}, "/ports/client")
        self.assert_schema_refuses({"roles": {"jobs": {"replicas": -1}}}, "/roles/jobs/replicas")
        self.assert_schema_refuses({"bucket": "file:///var/data"}, "/bucket")
        self.assert_schema_refuses({"zones": ["US East"]}, "/zones/0")
        self.assert_schema_refuses({"roles": {"jobs": {"zone": "a b"}}}, "/roles/jobs/zone")
        self.assert_schema_refuses({"controlPlane": {"url": "etcd:2379"}}, "/controlPlane/url")
        self.assert_schema_refuses({"cache": {"diskBytes": "lots"}}, "/cache/diskBytes")
        self.assert_schema_refuses({"batchWrite": 100}, "batchWrite")

    def test_a_control_plane_is_required(self) -> None:
        err = render_error(merge(KEY, {"controlPlane": {"enabled": False}}))
        self.assertIn("controlPlane.url", err)
        err = render_error(merge(KEY, {"controlPlane": {"url": "http://elsewhere:7070"}}))
        self.assertIn("controlPlane.enabled=false", err)

    def test_inconsistent_zones_and_ports(self) -> None:
        err = render_error(merge(KEY, {"zones": ["a", "b"], "roles": {"jobs": {"zone": "a"}}}))
        self.assertIn("roles.jobs.zone", err)
        err = render_error(merge(KEY, {"ports": {"peer": 8222}}))
        self.assertIn("three different ports", err)


if __name__ == "__main__":
    unittest.main()
