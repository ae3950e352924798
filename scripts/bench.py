#!/usr/bin/env python3
"""apigw-edge benchmark: every configuration side by side, in one run, with one Envoy binary.

Rows (all against the same stand-in Lambda, a second Envoy answering a fixed proxy response):
  B0  Envoy direct_response with the body and headers of a cache hit (the floor)
  B1  Envoy routing plainly to the stand-in (no wasm)
  B3  B1 plus a no-op proxy-wasm filter (the fixed cost of a wasm VM)
  BL  a minimal proxy-wasm filter that answers each request with a local reply (200, a small
      JSON body, one header); BLH the same with 20 more headers
  X*  B3's no-op filter making 50 host calls of one kind per request, then letting the request
      through: XH read the request headers, XP a property, XG a shared-data read, XS a
      shared-data read and compare-and-swap write, XM a counter increment, XT the clock, XW
      set a request header. The cost of one call is (CPU per request - B3's) / 50.
  BD  a minimal proxy-wasm filter that answers each request with one dispatch_http_call to the
      stand-in (the floor of any proxy-wasm design that calls Lambda per request)
  BT  T's host calls and nothing else: T's configuration with the gateway's module swapped for
      bench/noop-filter in `gateway dispatch` mode, which reads the request's headers and the
      clock, reads and writes a usage-plan cell, counts, dispatches an Invoke the size of T's,
      reads the answer's headers and body and the clock, records and counts, and answers with
      the gateway's headers (T over BT is the pipeline's own work; BT over BD the host calls)
  BTH the same for TH's host calls (`gateway hit`: the request's headers, clock, the plan's
      cell, the cache's epoch cell, three counts, the cached answer)
  NL  Envoy's native aws_lambda filter invoking the stand-in (inline dummy credentials)
  NB  a minimal Envoy dynamic module (bench/noop-native) that sends each request on as an
      Invoke in place of the client's (fixed headers and 1.4 KB body, routed by the cluster
      header) and replaces the answer's headers and body: the floor of the native build's
      design, as BD is of dispatching from wasm
  T   apigw-edge, proxy integration: route + API key + usage plan + event + invoke + mapping
  TV  apigw-edge, non-proxy integration with request and response templates
  TH  apigw-edge, stage cache hit
  TA  apigw-edge, T behind a TOKEN Lambda authorizer whose result is cached
  TC  apigw-edge, T behind a Cognito user pool authorizer (an RS256 ID token, verified in the
      filter once per worker and then found in its cache; the stand-in serves the pool's JWKS,
      bench/cognito.json)
  TP  apigw-edge, http_proxy integration to the stand-in as an HTTP backend: the same pipeline
      as T, then the backend request sent in place of the client's through Envoy's router
      (forwarding: ROUTER, the default) and its answer passed through
  TPD TP with forwarding: DISPATCH (the backend request as a second HTTP exchange)
  B1P B1 for a POST with a JSON body
  BF  a minimal proxy-wasm filter (bench/noop-filter, forward mode) that sends each POST on as
      an Invoke in place of the client's (fixed headers and 1.4 KB body, routed by the
      cluster header) and replaces the answer's status, headers and body: the floor of TF's
      design, as BD is of dispatching
  TF  apigw-edge, proxy integration for a POST with a JSON body: the Invoke request sent in
      place of the client's through Envoy's router (a GET has no body to replace, so T is
      always dispatched)
  TFD TF with forwarding: DISPATCH
  N   T with the native build of the filter (Envoy dynamic module), which dispatches its
      integration requests unless told to forward them; NH, NF and NP the same for TH, TF, TP
  NFR the native build's POST (row NF, whose Invoke the native build dispatches by default)
      with forwarding: ROUTER: the Invoke sent in place of the client's request
  NP  the native build's http_proxy GET (row TP's request), dispatched (its default)
  NPR NP with forwarding: ROUTER
  TSE T with calls signed by Envoy's aws_request_signing filter
  TSF T with calls signed by the filter itself

Throughput is closed-loop (wrk, 16 connections); latency is open-loop at half of the slowest
row's throughput, a rate every row sustains (oha --latency-correction), and for B1 and T again
at half of T's. The Envoy under test runs with --concurrency 1 pinned
to CPU 0; the load generator and the stand-in share CPU 1. Rows are interleaved over
several rounds; the table shows medians with min-max. Also: RSS with and without the filter
at concurrency 1 and 2, the release .wasm size, start-to-first-response, and the core
micro-benchmarks natively (allocating with jemalloc) and on wasm32, with instructions per
run of the whole-request steps counted by valgrind (a count, unlike a time, does not move
with the machine's load).
Writes a JSON file next to the table.
"""

import argparse
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import urllib.parse
import urllib.request
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".work" / "bench"
ENVOY = Path(os.environ.get("APIGW_EDGE_ENVOY", ROOT / ".venv" / "bin" / "envoy"))
WASM = Path(os.environ.get("APIGW_EDGE_WASM", ROOT / "target" / "wasm32-wasip1" / "release" / "apigw_edge.wasm"))
NATIVE = ROOT / "target" / "native" / "libapigw_edge.so"
NOOP = ROOT / "target" / "bench-noop" / "wasm32-wasip1" / "release" / "apigw_edge_bench_noop.wasm"
NOOP_NATIVE = ROOT / "target" / "bench-noop-native" / "release" / "libapigw_edge_bench_noop_native.so"
CLI = ROOT / "target" / "release" / "apigw-edge"
KEY = "bench-key-0123456789abcdefghij"
ORDER = (ROOT / "bench" / "order.json").read_text()

STAND_IN_PORT, STAND_IN_ADMIN = 21001, 21002
PORT, ADMIN = 21010, 21011
# Row TR: the rate-limit service fixture (Limitador on Redis), on the stand-in's CPU.
RLS_PORT, REDIS_PORT = 21020, 21021
RLS_FIXTURE = ROOT / "target" / "ratelimit-fixture" / "release" / "apigw-edge-ratelimit-fixture"
# The stand-in's answer: a Lambda proxy response, as the Invoke API returns it.
PROXY_RESPONSE = json.dumps(
    {"statusCode": 200, "headers": {"content-type": "application/json"},
     "body": json.dumps({"message": "hello from the stand-in"}, separators=(",", ":"))},
    separators=(",", ":"))
HIT_BODY = json.dumps({"message": "hello from the stand-in"}, separators=(",", ":"))
HIT_HEADERS = {
    "content-type": "application/json",
    "x-amzn-requestid": "c412d592-1e2e-4b96-8775-5a995112f4e7",
    "x-amz-apigw-id": "xBLVkh4uS5aHdVo=",
    "x-amzn-trace-id": "Root=1-6b0ed070-1e2e4b9687755a995112f4e7",
}
DUMMY_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "AKIDBENCHMARK", "AWS_SECRET_ACCESS_KEY": "bench-secret",
                     "AWS_SESSION_TOKEN": "bench-token"}

TARGETS = [
    # (label, metric key, comparison, bound)
    ("T / B1 throughput", "T/B1", ">=", 0.85),
    ("B3 / B1 throughput", "B3/B1", ">=", 0.97),
    ("T / NL throughput", "T/NL", ">=", 0.95),
    ("TH / B0 throughput", "TH/B0", ">=", 0.80),
    ("TH / B1 throughput", "TH/B1", ">=", 1.3),
    ("TA / T CPU per request (cached authorizer)", "TA/T cpu", "<=", 1.10),
    ("TC / T CPU per request (Cognito token)", "TC/T cpu", "<=", 1.15),
    ("TP / T throughput (http_proxy against Lambda proxy)", "TP/T", ">=", 1.0),
    ("TF / B1P throughput (a forwarded POST against plain routing)", "TF/B1P", ">=", 0.6),
    ("T / BD throughput (the pipeline against a bare dispatching filter)", "T/BD", ">=", 0.85),
    ("TH / BL CPU per request (a cache hit against a minimal local reply)", "TH/BL cpu", "<=", 1.10),
    ("N / B1 throughput (native build)", "N/B1", ">=", 0.85),
    ("N / NL throughput (native build against Envoy's Lambda filter)", "N/NL", ">=", 1.0),
    ("start to first response of T (ms)", "T start ms", "<=", 1000),
    ("added p99 of T over B1 at half of T's throughput (us)", "T-B1 p99 us", "<=", 75),
    ("added RSS per extra worker VM (MiB)", "rss per VM MiB", "<=", 8),
    ("release .wasm (KiB)", "wasm KiB", "<=", 800),
]


def log(msg):
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def hcm(name, routes, filters):
    return {
        "name": "envoy.filters.network.http_connection_manager",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
            "stat_prefix": name,
            "route_config": {"virtual_hosts": [{"name": name, "domains": ["*"], "routes": routes}]},
            "http_filters": filters + [{
                "name": "envoy.filters.http.router",
                "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}],
        },
    }


def bootstrap(name, port, admin, routes, filters, clusters=()):
    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}},
        "static_resources": {
            "listeners": [{"name": name,
                           "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
                           "filter_chains": [{"filters": [hcm(name, routes, filters)]}]}],
            "clusters": list(clusters),
        },
    }


# What the stand-in answers the authorizer function: allow everything.
AUTHORIZER_RESPONSE = json.dumps(
    {"principalId": "bench", "policyDocument": {"Version": "2012-10-17", "Statement": [
        {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": "*"}]},
     "context": {"tier": "gold"}},
    separators=(",", ":"))


# The benchmark's user pool: its keys (served by the stand-in) and an ID token.
COGNITO = json.loads((ROOT / "bench" / "cognito.json").read_text())
JWKS, ID_TOKEN = json.dumps(COGNITO["jwks"], separators=(",", ":")), COGNITO["id_token"]


def direct(body, headers):
    jwks = {"match": {"path": "/us-east-1_bench/.well-known/jwks.json"},
            "direct_response": {"status": 200, "body": {"inline_string": JWKS}}}
    authorizer = {"match": {"prefix": "/2015-03-31/functions/authorizer/"},
                  "direct_response": {"status": 200, "body": {"inline_string": AUTHORIZER_RESPONSE}},
                  "response_headers_to_add": [{"header": {"key": k, "value": v}} for k, v in headers.items()]}
    return [jwks, authorizer, {"match": {"prefix": "/"},
             "direct_response": {"status": 200, "body": {"inline_string": body}},
             "response_headers_to_add": [{"header": {"key": k, "value": v}} for k, v in headers.items()]}]


def stand_in_cluster():
    return {"name": "lambda", "type": "STATIC", "connect_timeout": "1s",
            "load_assignment": {"cluster_name": "lambda", "endpoints": [{"lb_endpoints": [
                {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1",
                                                             "port_value": STAND_IN_PORT}}}}]}]}}


def to_stand_in():
    return [{"match": {"prefix": "/"}, "route": {"cluster": "lambda"}}]


def write(name, config):
    path = WORK / f"{name}.json"
    path.write_text(json.dumps(config, indent=1))
    return path


def configs():
    """Writes every configuration; returns {row: (config path, env)}."""
    # The stand-in reads the whole request before answering (buffer filter), as Lambda
    # does: a reply sent while the body is still arriving makes the caller drop the
    # connection, and every call would pay a new one.
    stand_in = bootstrap("stand_in", STAND_IN_PORT, STAND_IN_ADMIN,
                         direct(PROXY_RESPONSE, {"content-type": "application/json",
                                                 "x-amzn-requestid": "stand-in"}),
                         [{"name": "envoy.filters.http.buffer", "typed_config": {
                             "@type": "type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer",
                             "max_request_bytes": 1048576}}])
    rows = {"stand_in": (write("stand_in", stand_in), {})}
    rows["B0"] = (write("B0", bootstrap("b0", PORT, ADMIN, direct(HIT_BODY, HIT_HEADERS), [])), {})
    rows["B1"] = (write("B1", bootstrap("b1", PORT, ADMIN, to_stand_in(), [], [stand_in_cluster()])), {})
    noop = {"name": "noop", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
        "config": {"name": "noop", "root_id": "noop",
                   "vm_config": {"vm_id": "noop", "runtime": "envoy.wasm.runtime.v8",
                                 "code": {"local": {"filename": str(NOOP)}}}}}}
    rows["B3"] = (write("B3", bootstrap("b3", PORT, ADMIN, to_stand_in(), [noop], [stand_in_cluster()])), {})
    dispatch = json.loads(json.dumps(noop))
    dispatch["typed_config"]["config"]["configuration"] = {
        "@type": "type.googleapis.com/google.protobuf.StringValue", "value": "dispatch"}
    dispatch["typed_config"]["config"]["allow_on_headers_stop_iteration"] = True
    rows["BD"] = (write("BD", bootstrap("bd", PORT, ADMIN, to_stand_in(), [dispatch], [stand_in_cluster()])), {})
    for row, mode in HOST_CALL_ROWS.items():
        f = json.loads(json.dumps(noop))
        f["typed_config"]["config"]["configuration"] = {
            "@type": "type.googleapis.com/google.protobuf.StringValue", "value": mode}
        rows[row] = (write(row, bootstrap(row.lower(), PORT, ADMIN, to_stand_in(), [f],
                                          [stand_in_cluster()])), {})
    lambda_filter = {"name": "envoy.filters.http.aws_lambda", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.aws_lambda.v3.Config",
        "arn": "arn:aws:lambda:us-east-1:123456789012:function:hello",
        "payload_passthrough": False,
        "credentials": {"access_key_id": DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                        "secret_access_key": DUMMY_CREDENTIALS["AWS_SECRET_ACCESS_KEY"]}}}
    rows["NL"] = (write("NL", bootstrap("nl", PORT, ADMIN, to_stand_in(), [lambda_filter],
                                        [stand_in_cluster()])), {})
    # The native design's floor: a minimal dynamic module forwarding in place, routed by
    # the cluster header as the rendered native configuration routes (bench/noop-native).
    floor = {"name": "floor", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter",
        "dynamic_module_config": {"name": "floor", "do_not_close": True,
                                  "module": {"local": {"filename": str(NOOP_NATIVE)}}},
        "filter_name": "floor",
        "filter_config": {"@type": "type.googleapis.com/google.protobuf.StringValue", "value": "lambda"}}}
    by_header = [{"match": {"prefix": "/", "headers": [{"name": "x-apigw-edge-cluster", "present_match": True}]},
                  "request_headers_to_remove": ["x-apigw-edge-cluster"],
                  "route": {"cluster_header": "x-apigw-edge-cluster"}}]
    rows["NB"] = (write("NB", bootstrap("nb", PORT, ADMIN, by_header, [floor], [stand_in_cluster()])), {})
    # The same floor for a forwarded POST from wasm.
    forward = json.loads(json.dumps(noop))
    forward["typed_config"]["config"]["configuration"] = {
        "@type": "type.googleapis.com/google.protobuf.StringValue", "value": "forward"}
    forward["typed_config"]["config"]["allow_on_headers_stop_iteration"] = True
    rows["BF"] = (write("BF", bootstrap("bf", PORT, ADMIN, by_header, [forward], [stand_in_cluster()])), {})
    base = (ROOT / "bench" / "deployment.yaml").read_text()
    shutil.copy(ROOT / "bench" / "api.json", WORK / "api.json")
    variants = {
        "T": ("", {}),
        "TSE": ("  signing: ENVOY\n  region: us-east-1\n  credentials: {provider: ENVIRONMENT}\n", DUMMY_CREDENTIALS),
        "TSF": ("  signing: FILTER\n  region: us-east-1\n", DUMMY_CREDENTIALS),
    }
    for name, (extra, env) in variants.items():
        text = base.replace("  endpoint: http://127.0.0.1:9000\n",
                            f"  endpoint: http://127.0.0.1:{STAND_IN_PORT}\n{extra}")
        # The stand-in also serves the user pool's keys.
        text = text.replace("http://127.0.0.1:9000/", f"http://127.0.0.1:{STAND_IN_PORT}/")
        text += f"listen: 127.0.0.1:{PORT}\nadmin: 127.0.0.1:{ADMIN}\n"
        dep = WORK / f"deployment-{name}.yaml"
        dep.write_text(text)
        out = WORK / f"{name}.yaml"
        subprocess.run([str(CLI), "render", str(dep), "--wasm", str(WASM), "--out", str(out)],
                       check=True, stdout=subprocess.DEVNULL)
        rows[name] = (out, env)
    # The same deployment with every integration request dispatched.
    dispatch = WORK / "deployment-D.yaml"
    dispatch.write_text((WORK / "deployment-T.yaml").read_text() + "forwarding: DISPATCH\n")
    subprocess.run([str(CLI), "render", str(dispatch), "--wasm", str(WASM), "--out",
                    str(WORK / "D.yaml")], check=True, stdout=subprocess.DEVNULL)
    for row in ["TPD", "TFD"]:
        rows[row] = (WORK / "D.yaml", {})
    # The same deployment counting its plan's throttle and quota in a rate-limit service.
    fleet = WORK / "deployment-TR.yaml"
    fleet.write_text((WORK / "deployment-T.yaml").read_text()
                     + f"usage:\n  rateLimitService: {{address: 127.0.0.1:{RLS_PORT}}}\n")
    subprocess.run([str(CLI), "render", str(fleet), "--wasm", str(WASM), "--out",
                    str(WORK / "TR.yaml")], check=True, stdout=subprocess.DEVNULL)
    subprocess.run([str(CLI), "ratelimit-config", str(fleet), "--for", "limitador", "--out",
                    str(WORK / "limits.yaml")], check=True, stdout=subprocess.DEVNULL)
    rows["TR"] = (WORK / "TR.yaml", {})
    # The same deployment with the native build of the filter (Envoy dynamic module).
    subprocess.run([str(CLI), "render", str(WORK / "deployment-T.yaml"), "--module", "native",
                    "--native", str(NATIVE), "--out", str(WORK / "N.yaml")],
                   check=True, stdout=subprocess.DEVNULL)
    for row in ["N", "NH", "NF", "NP"]:
        rows[row] = (WORK / "N.yaml", {})
    # The native build forwarding in place (it dispatches unless told).
    router = WORK / "deployment-NR.yaml"
    router.write_text((WORK / "deployment-T.yaml").read_text() + "forwarding: ROUTER\n")
    subprocess.run([str(CLI), "render", str(router), "--module", "native",
                    "--native", str(NATIVE), "--out", str(WORK / "NR.yaml")],
                   check=True, stdout=subprocess.DEVNULL)
    rows["NFR"] = rows["NPR"] = (WORK / "NR.yaml", {})
    # T's and TH's host calls without the pipeline: T's own configuration with its filter
    # swapped for bench/noop-filter's `gateway` mode (the same filters in front, routes and
    # clusters), so each pair differs only in the module's own work.
    rows["BT"] = (gateway_imitation(WORK / "T.yaml", "BT", "gateway dispatch"), {})
    rows["BTH"] = (gateway_imitation(WORK / "T.yaml", "BTH", "gateway hit"), {})
    rows["B1P"] = rows["B1"]
    rows["TF"] = rows["T"]
    rows["TV"] = rows["T"]
    rows["TP"] = rows["T"]
    rows["TH"] = rows["T"]
    rows["TA"] = rows["T"]
    rows["TC"] = rows["T"]
    return rows


def gateway_imitation(rendered, row, mode):
    """`rendered` (the gateway's Envoy configuration) with the gateway's module and
    configuration replaced by bench/noop-filter in `mode`; `gateway dispatch` gets the
    Lambda cluster and authority the gateway calls."""
    text = rendered.read_text()
    cluster = re.search(r"cluster_name: (apigw_lambda_\S+)", text)
    module = re.findall(r"filename: (\S+apigw_edge\.wasm)\n", text)
    config = re.findall(r"^( +value: )'\{\"deployment\".*$", text, flags=re.M)
    if not cluster or len(module) != 1 or len(config) != 1:
        raise SystemExit(f"{rendered}: not the rendered configuration {row} expects")
    if mode == "gateway dispatch":
        mode += f" {cluster.group(1)} 127.0.0.1:{STAND_IN_PORT}"
    text = text.replace(f"filename: {module[0]}\n", f"filename: {NOOP}\n")
    text = re.sub(r"^( +value: )'\{\"deployment\".*$", lambda m: f"{m.group(1)}'{mode}'",
                  text, flags=re.M)
    out = WORK / f"{row}.yaml"
    out.write_text(text)
    return out


# The no-op filter's modes for the host-call rows (see bench/noop-filter), and how many calls
# each makes per request.
HOST_CALLS = 50
HOST_CALL_ROWS = {
    "BL": "reply 0", "BLH": "reply 20",
    "XH": f"calls headers {HOST_CALLS}", "XP": f"calls property {HOST_CALLS}",
    "XG": f"calls shared_get {HOST_CALLS}", "XS": f"calls shared_cas {HOST_CALLS}",
    "XM": f"calls metric {HOST_CALLS}", "XT": f"calls time {HOST_CALLS}",
    "XW": f"calls set_header {HOST_CALLS}",
}
HOST_CALL_NAMES = {"XH": "read the request header map", "XP": "read a property (source.address)",
                   "XG": "shared-data read", "XS": "shared-data read + compare-and-swap write",
                   "XM": "counter increment", "XT": "clock read", "XW": "set a request header"}

# What the load generator sends for each row: method, path, headers, body.
REQUESTS = {
    "B0": ("GET", "/prod/hello", {}, None),
    "B1": ("GET", "/prod/hello", {}, None),
    "B3": ("GET", "/prod/hello", {}, None),
    "BD": ("GET", "/prod/hello", {}, None),
    "NL": ("GET", "/prod/hello", {}, None),
    "NB": ("GET", "/prod/hello", {}, None),
    "T": ("GET", "/prod/hello", {"x-api-key": KEY}, None),
    "BT": ("GET", "/prod/hello", {"x-api-key": KEY}, None),
    "BTH": ("GET", "/prod/cached", {"x-api-key": KEY}, None),
    "TR": ("GET", "/prod/hello", {"x-api-key": KEY}, None),
    "TSE": ("GET", "/prod/hello", {"x-api-key": KEY}, None),
    "TSF": ("GET", "/prod/hello", {"x-api-key": KEY}, None),
    "TV": ("POST", "/prod/orders/7?currency=EUR", {"x-api-key": KEY, "content-type": "application/json"}, ORDER),
    "TH": ("GET", "/prod/cached", {"x-api-key": KEY}, None),
    "TP": ("GET", "/prod/backend/hello", {"x-api-key": KEY}, None),
    "TPD": ("GET", "/prod/backend/hello", {"x-api-key": KEY}, None),
    "B1P": ("POST", "/prod/hello", {"content-type": "application/json"}, ORDER),
    "BF": ("POST", "/prod/hello", {"content-type": "application/json"}, ORDER),
    "TF": ("POST", "/prod/hello", {"x-api-key": KEY, "content-type": "application/json"}, ORDER),
    "TFD": ("POST", "/prod/hello", {"x-api-key": KEY, "content-type": "application/json"}, ORDER),
    "TA": ("GET", "/prod/guarded", {"x-api-key": KEY, "authorization": "Bearer bench-token"}, None),
    "N": ("GET", "/prod/hello", {"x-api-key": KEY}, None),
    "NH": ("GET", "/prod/cached", {"x-api-key": KEY}, None),
    "NF": ("POST", "/prod/hello", {"x-api-key": KEY, "content-type": "application/json"}, ORDER),
    "NFR": ("POST", "/prod/hello", {"x-api-key": KEY, "content-type": "application/json"}, ORDER),
    "NP": ("GET", "/prod/backend/hello", {"x-api-key": KEY}, None),
    "NPR": ("GET", "/prod/backend/hello", {"x-api-key": KEY}, None),
    "TC": ("GET", "/prod/cognito", {"x-api-key": KEY, "authorization": ID_TOKEN}, None),
}
REQUESTS.update({row: ("GET", "/prod/hello", {}, None) for row in HOST_CALL_ROWS})
ROWS = ["B0", "B1", "B3", "BD", "BT", "BTH", "NL", "NB", "T", "TR", "TV", "TH", "TA", "TC", "TP", "TPD", "B1P", "BF", "TF", "TFD",
        "TSE", "TSF", "N", "NH", "NF", "NFR", "NP", "NPR", "BL", "BLH", "XH", "XP", "XG", "XS", "XM", "XT", "XW"]


class Envoy:
    def __init__(self, config, env, cpus, concurrency=1, port=PORT, admin=ADMIN, base_id=0, name="dut",
                 wrap=(), binary=None):
        self.port, self.admin = port, admin
        self.log = open(WORK / f"{name}.log", "w")
        cmd = [str(binary or ENVOY), "-c", str(config), "--concurrency", str(concurrency),
               "--disable-hot-restart", "--base-id", str(base_id), "-l", "warning"]
        cmd = list(wrap) + cmd
        if cpus:
            cmd = ["taskset", "-c", cpus] + cmd
        self.started = time.monotonic()
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=self.log,
                                     env={**os.environ, **env})

    def wait_ready(self, path="/ready", port=None, want=200, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"Envoy exited; see {self.log.name}")
            status = http_status(port or self.admin, path)
            if status == want:
                return time.monotonic() - self.started
            time.sleep(0.01)
        raise SystemExit(f"Envoy not ready; see {self.log.name}")

    def cpu_seconds(self):
        """User plus system CPU time of the process so far."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_kib(self):
        text = Path(f"/proc/{self.proc.pid}/status").read_text()
        return int(re.search(r"VmRSS:\s+(\d+) kB", text).group(1))

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def http_status(port, path, headers=None, method="GET", body=None):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close"]
            for k, v in (headers or {}).items():
                lines.append(f"{k}: {v}")
            data = (body or "").encode()
            if body is not None:
                lines.append(f"Content-Length: {len(data)}")
            s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + data)
            head = s.recv(64).decode("latin-1")
            return int(head.split()[1])
    except (OSError, ValueError, IndexError):
        return None


def start_stand_in(cfg):
    """The stand-in Lambda on CPU 1, ready."""
    stand_in = Envoy(cfg["stand_in"][0], {}, "1", port=STAND_IN_PORT, admin=STAND_IN_ADMIN,
                     base_id=1, name="stand_in")
    stand_in.wait_ready()
    return stand_in


def wait_for_200(row, timeout, pause):
    """Sends `row`'s request every `pause` seconds until it is answered 200."""
    method, path, headers, body = REQUESTS[row]
    deadline = time.monotonic() + timeout
    while http_status(PORT, path, headers, method, body) != 200:
        if time.monotonic() > deadline:
            raise SystemExit(f"{row} never answered 200")
        time.sleep(pause)


def warm(row):
    method, path, headers, body = REQUESTS[row]
    # Keys of token authorizers arrive shortly after start-up.
    wait_for_200(row, timeout=10, pause=0.1)
    for _ in range(20):
        status = http_status(PORT, path, headers, method, body)
        if status != 200:
            raise SystemExit(f"{row}: {method} {path} answered {status}")


def wrk_script(row):
    method, _, headers, body = REQUESTS[row]
    lua = WORK / f"{row}.lua"
    lines = [f'wrk.method = "{method}"']
    for k, v in headers.items():
        lines.append(f'wrk.headers["{k}"] = "{v}"')
    if body is not None:
        lines.append(f"wrk.body = {json.dumps(body)}")
    lua.write_text("\n".join(lines) + "\n")
    return lua


def throughput(row, seconds):
    _, path, _, _ = REQUESTS[row]
    out = subprocess.run(["taskset", "-c", "1", "wrk", "-t1", "-c16", f"-d{seconds}s", "-s",
                          str(wrk_script(row)), f"http://127.0.0.1:{PORT}{path}"],
                         capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise SystemExit(f"{row}: {errors.group(1)} non-2xx answers under load")
    return rps, total


def latency(row, seconds, rate):
    method, path, headers, body = REQUESTS[row]
    cmd = ["taskset", "-c", "1", oha(), "-z", f"{seconds}s", "-q", str(rate), "-c", "16",
           "--latency-correction", "--no-tui", "--output-format", "json", "-m", method]
    for k, v in headers.items():
        cmd += ["-H", f"{k}: {v}"]
    if body is not None:
        cmd += ["-d", body]
    out = json.loads(subprocess.run(cmd + [f"http://127.0.0.1:{PORT}{path}"], capture_output=True,
                                    text=True, check=True).stdout)
    p = out["latencyPercentiles"]
    return {"p50_us": p["p50"] * 1e6, "p99_us": p["p99"] * 1e6}


def start_fleet():
    """Redis and the rate-limit service fixture on loopback (CPU 1), for row TR."""
    def listening(port):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            return False
    redis = subprocess.Popen(["taskset", "-c", "1", "redis-server", "--port", str(REDIS_PORT),
                              "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                             stdout=subprocess.DEVNULL)
    while not listening(REDIS_PORT):
        time.sleep(0.05)
    service = subprocess.Popen(["taskset", "-c", "1", str(RLS_FIXTURE), f"127.0.0.1:{RLS_PORT}",
                                f"redis://127.0.0.1:{REDIS_PORT}", str(WORK / "limits.yaml")],
                               stderr=subprocess.DEVNULL)
    while not listening(RLS_PORT):
        time.sleep(0.05)
    return [service, redis]


def start_row(cfg, row):
    """The Envoy under test for `row`, pinned to CPU 0, ready and warmed up."""
    config, env = cfg[row]
    dut = Envoy(config, env, "0", name=row)
    try:
        dut.wait_ready()
        warm(row)
    except BaseException:
        # Leave no Envoy behind on the benchmark's ports.
        dut.stop()
        raise
    return dut


def profile(cfg, row, seconds):
    """Samples the Envoy under test with perf while wrk loads `row`; prints where its CPU goes
    (by library and symbol; the filter's compiled wasm shows as V8's JIT code)."""
    _, path, _, _ = REQUESTS[row]
    dut = start_row(cfg, row)
    data = WORK / f"perf-{row}.data"
    try:
        load = subprocess.Popen(["taskset", "-c", "1", "wrk", "-t1", "-c16", f"-d{seconds + 2}s",
                                 "-s", str(wrk_script(row)), f"http://127.0.0.1:{PORT}{path}"],
                                stdout=subprocess.DEVNULL)
        time.sleep(1)
        subprocess.run(["perf", "record", "-F", "999", "-g", "-o", str(data), "-p",
                        str(dut.proc.pid), "--", "sleep", str(seconds)],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        load.wait()
    finally:
        dut.stop()
    for sort in ("dso", "dso,symbol"):
        out = subprocess.run(["perf", "report", "-i", str(data), "--stdio", "--no-children",
                              "--sort", sort, "--percent-limit", "1", "-g", "none"],
                             capture_output=True, text=True, check=True).stdout
        print(f"\nperf, {row}, by {sort} (samples of the Envoy process, percent):")
        print("\n".join(l for l in out.splitlines() if l.strip() and not l.startswith("#")))


def latency_rounds(cfg, rows, args, rate, store):
    """Open-loop latency of each row at `rate`, rows interleaved over the rounds."""
    for rnd in range(args.rounds):
        for row in rows:
            dut = start_row(cfg, row)
            lat = latency(row, args.seconds, rate)
            store[row].append(lat)
            log(f"round {rnd + 1}/{args.rounds} {row} at {rate} req/s: "
                f"p50 {lat['p50_us']:.0f} us, p99 {lat['p99_us']:.0f} us")
            dut.stop()


def oha():
    return shutil.which("oha") or str(Path.home() / ".cargo" / "bin" / "oha")


def summary(values):
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "all": values}


def core_bench():
    """The core micro-benchmarks natively and on wasm32: {step: (native ns, wasm ns)}."""
    env = {**os.environ, "CORE_BENCH_MS": "500"}
    def run(extra):
        p = subprocess.run(["cargo", "run", "--quiet", "--release", "--manifest-path", "bench/core/Cargo.toml",
                            "--target-dir", "target/bench-core"] + extra,
                           cwd=ROOT, env=env, capture_output=True, text=True)
        if p.returncode != 0:
            raise SystemExit(f"core benchmark failed:\n{p.stderr}")
        return p.stdout
    native = run(["--features", "jemalloc"])
    wasm = run(["--target", "wasm32-wasip1"])
    parse = lambda text: {m.group(1): float(m.group(2)) for m in re.finditer(r"^core (\S+) ([\d.]+)$", text, re.M)}
    n, w = parse(native), parse(wasm)
    counted = instructions()
    return {k: {"native_ns": n[k], "wasm_ns": w.get(k), "wasm_over_native": (w[k] / n[k]) if k in w else None,
                "native_instructions": counted.get(k)}
            for k in n}


# Steps whose instructions are counted: unlike times, the counts do not move with the machine's
# load, so runs on different days and hosts compare (the native benchmark allocates with
# jemalloc, whose cost does not depend on the heap's history as glibc's does). The last one
# identifies an API key among 10,000: it stays small only while the lookup does not grow with
# the number of keys.
COUNTED_STEPS = ["stream_proxied_get", "stream_forwarded_post", "stream_cache_hit", "proxy_event",
                 "api_key_of_10k"]
COUNTED_RUNS = 2000


def instructions():
    """Instructions per run of COUNTED_STEPS in the native core benchmark, counted by
    valgrind's callgrind: a run of 0 iterations (the set-up) subtracted from one of
    COUNTED_RUNS. {} when valgrind is missing."""
    if not shutil.which("valgrind"):
        log("valgrind missing: no instruction counts")
        return {}
    binary = ROOT / "target" / "bench-core" / "release" / "apigw-edge-core-bench"
    def count(step, runs):
        p = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", str(binary)],
                           env={**os.environ, "CORE_BENCH_STEP": step, "CORE_BENCH_RUNS": str(runs)},
                           capture_output=True, text=True)
        m = re.search(r"Collected : (\d+)", p.stderr)
        if p.returncode != 0 or not m:
            raise SystemExit(f"counting {step} failed:\n{p.stderr[-2000:]}")
        return int(m.group(1))
    return {step: (count(step, COUNTED_RUNS) - count(step, 0)) / COUNTED_RUNS for step in COUNTED_STEPS}


# Rows whose whole-Envoy instructions per request --instructions counts by default: the
# dispatch floor, T's host calls, T; the local-reply floor, TH's host calls, TH; plain
# routing, the native build's floor, the native build.
INSTRUCTION_ROWS = ["BD", "BT", "T", "BL", "BTH", "TH", "B1", "NB", "N"]
# The row each counted row is compared with (its design's floor, or plain routing).
INSTRUCTION_BASES = {"BT": "BD", "T": "BD", "BTH": "BL", "TH": "BL", "NB": "B1", "N": "B1", "NFR": "B1P",
                     "NH": "BL", "BF": "B1P", "TF": "B1P", "TFD": "B1P", "NF": "B1P",
                     "TP": "B1", "TPD": "B1", "NP": "B1", "NPR": "B1"}
INSTRUCTION_REQUESTS = 1000


def envoy_binary():
    """The Envoy executable itself: the virtualenv's `envoy` is a Python launcher, which
    callgrind would count instead of Envoy."""
    if "APIGW_EDGE_ENVOY" in os.environ:
        return ENVOY
    found = sorted((ROOT / ".venv" / "lib").glob("python*/site-packages/envoy/_bin/envoy"))
    if not found:
        raise SystemExit("the virtualenv's Envoy binary is missing: run ./scripts/setup.sh")
    return found[0]


def traffic_bytes(admin):
    """Bytes an Envoy's HTTP listeners have received and sent so far, its admin's own left
    out: (received, sent)."""
    query = urllib.parse.quote(r"^http\.[^.]+\.downstream_cx_(rx|tx)_bytes_total$")
    with urllib.request.urlopen(f"http://127.0.0.1:{admin}/stats?filter={query}", timeout=60) as r:
        text = r.read().decode()
    totals = {"rx": 0, "tx": 0}
    for m in re.finditer(r"^http\.([^.]+)\.downstream_cx_(rx|tx)_bytes_total: (\d+)$", text, re.M):
        if m.group(1) != "admin":
            totals[m.group(2)] += int(m.group(3))
    return totals["rx"], totals["tx"]


# Rows that imitate another's host calls (bench/noop-filter's gateway mode, with sizes read
# from the imitated row): their Invokes and answers must stay the same size as the original's.
IMITATIONS = {"BT": "T", "BTH": "TH"}


def check_imitations(sizes):
    """Warns when an imitating row's bytes per request to the stand-in or to the client
    differ from its original's by more than 2 %: the gateway mode's fixed sizes have drifted
    from what the gateway sends, and the row no longer measures T's or TH's host calls."""
    for copy, original in IMITATIONS.items():
        if copy not in sizes or original not in sizes:
            continue
        for what, to in (("to_lambda", "to the Lambda stand-in"), ("to_client", "to the client")):
            a, b = sizes[original][what], sizes[copy][what]
            if abs(a - b) > 0.02 * max(a, b, 1):
                log(f"WARNING: {copy} sends {b:,.0f} bytes per request {to} against "
                    f"{original}'s {a:,.0f}: update bench/noop-filter's gateway mode")


def envoy_instructions(cfg, rows):
    """Instructions per request of the whole Envoy process (V8's compiled module included),
    counted by callgrind over INSTRUCTION_REQUESTS requests after a warm-up, and the bytes
    per request it sent to the stand-in and to the client over the same requests:
    ({row: count}, {row: {"to_lambda": n, "to_client": n}}). Unlike CPU time the count does
    not move with the host's load, so small differences between rows show; it leaves out the
    kernel's work (system calls, scheduling)."""
    counts, sizes = {}, {}
    for row in rows:
        config, env = cfg[row]
        out = WORK / f"callgrind-{row}.out"
        for old in WORK.glob(f"callgrind-{row}.out*"):
            old.unlink()
        dut = Envoy(config, env, "0", name=f"{row}-callgrind", binary=envoy_binary(),
                    wrap=["valgrind", "--tool=callgrind", "--smc-check=all-non-file",
                          f"--callgrind-out-file={out}"])
        try:
            dut.wait_ready(timeout=300)
            method, path, headers, body = REQUESTS[row]
            # The first requests wait for the module's code, slow under callgrind.
            wait_for_200(row, timeout=300, pause=1)
            load = [oha(), "--no-tui", "-c", "8", "-m", method]
            for k, v in headers.items():
                load += ["-H", f"{k}: {v}"]
            if body is not None:
                load += ["-d", body]
            url = f"http://127.0.0.1:{PORT}{path}"
            subprocess.run(load + ["-n", "300", url], check=True, stdout=subprocess.DEVNULL)
            lambda_before, client_before = traffic_bytes(STAND_IN_ADMIN)[0], traffic_bytes(ADMIN)[1]
            subprocess.run(["callgrind_control", "-z", str(dut.proc.pid)], check=True,
                           stdout=subprocess.DEVNULL)
            answers = subprocess.run(load + ["-n", str(INSTRUCTION_REQUESTS), url], check=True,
                                     capture_output=True, text=True).stdout
            subprocess.run(["callgrind_control", "-d", str(dut.proc.pid)], check=True,
                           stdout=subprocess.DEVNULL)
            sizes[row] = {
                "to_lambda": (traffic_bytes(STAND_IN_ADMIN)[0] - lambda_before) / INSTRUCTION_REQUESTS,
                "to_client": (traffic_bytes(ADMIN)[1] - client_before) / INSTRUCTION_REQUESTS,
            }
        finally:
            dut.stop()
        ok = re.search(r"\[200\] (\d+) responses", answers)
        if not ok or int(ok.group(1)) != INSTRUCTION_REQUESTS:
            raise SystemExit(f"{row}: not every request under callgrind answered 200:\n{answers}")
        dumps = sorted(WORK.glob(f"callgrind-{row}.out.*"), key=lambda p: p.stat().st_mtime)
        total = re.search(r"^(?:summary|totals): (\d+)", dumps[-1].read_text(), re.M) if dumps else None
        if not total:
            raise SystemExit(f"{row}: callgrind wrote no counts")
        counts[row] = int(total.group(1)) / INSTRUCTION_REQUESTS
        log(f"{row}: {counts[row]:,.0f} Envoy instructions per request")
    return counts, sizes


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--rows", help="comma-separated rows (default: every row; with --instructions, "
                                   f"{','.join(INSTRUCTION_ROWS)})")
    ap.add_argument("--out", default=str(WORK / "results.json"))
    ap.add_argument("--no-core", action="store_true", help="skip the core micro-benchmarks")
    ap.add_argument("--profile", metavar="ROW",
                    help="only sample one row's Envoy with perf (Debian linux-perf) and print its top costs")
    ap.add_argument("--instructions", action="store_true",
                    help="only count the whole Envoy's instructions per request of each row "
                         "under callgrind")
    ap.add_argument("--report", metavar="RESULTS",
                    help="only print the tables of an earlier run's results file")
    args = ap.parse_args()
    default = INSTRUCTION_ROWS if args.instructions else ROWS
    rows = [r for r in args.rows.split(",") if r] if args.rows else default
    if args.report:
        results = json.loads(Path(args.report).read_text())
        report(results, [r for r in rows if r in results["throughput_rps"]])
        return
    WORK.mkdir(parents=True, exist_ok=True)
    cfg = configs()
    if args.instructions:
        stand_in = start_stand_in(cfg)
        try:
            counts, sizes = envoy_instructions(cfg, rows)
        finally:
            stand_in.stop()
        print("\n| row | Envoy instructions per request | ratio "
              "| bytes to Lambda per request | bytes to client per request |")
        print("| --- | --- | --- | --- | --- |")
        for row, n in counts.items():
            base = INSTRUCTION_BASES.get(row)
            over = f"{n / counts[base]:.2f} over {base}" if base in counts else ""
            print(f"| {row} | {n:,.0f} | {over} "
                  f"| {sizes[row]['to_lambda']:,.0f} | {sizes[row]['to_client']:,.0f} |")
        check_imitations(sizes)
        Path(WORK / "instructions.json").write_text(json.dumps(
            {row: {"instructions": n, **sizes[row]} for row, n in counts.items()}, indent=2))
        return
    if args.profile:
        stand_in = start_stand_in(cfg)
        try:
            profile(cfg, args.profile, args.seconds)
        finally:
            stand_in.stop()
        return

    stand_in = start_stand_in(cfg)
    fleet = start_fleet() if "TR" in rows else []
    results = {"throughput_rps": {r: [] for r in rows}, "cpu_us_per_request": {r: [] for r in rows},
               "latency": {r: [] for r in rows}}
    try:
        for rnd in range(args.rounds):
            for row in rows:
                dut = start_row(cfg, row)
                cpu = dut.cpu_seconds()
                rps, total = throughput(row, args.seconds)
                cpu_us = (dut.cpu_seconds() - cpu) * 1e6 / total
                results["throughput_rps"][row].append(rps)
                results["cpu_us_per_request"][row].append(cpu_us)
                log(f"round {rnd + 1}/{args.rounds} {row}: {rps:.0f} req/s, {cpu_us:.1f} CPU us per request")
                dut.stop()
        # One rate every row sustains, so no row's latency is queueing behind a saturated
        # Envoy.
        slowest = min(statistics.median(results["throughput_rps"][r]) for r in rows)
        rate = max(1, int(slowest / 2))
        results["latency_rate_rps"] = rate
        latency_rounds(cfg, rows, args, rate, results["latency"])

        # Compare T with B1 again at half of T's own throughput (the slowest rows are far
        # slower than T).
        if "T" in rows and "B1" in rows:
            rate_t = int(statistics.median(results["throughput_rps"]["T"]) / 2)
            results["latency_at_half_t_rate_rps"] = rate_t
            results["latency_at_half_t"] = {"B1": [], "T": []}
            latency_rounds(cfg, ["B1", "T"], args, rate_t, results["latency_at_half_t"])

        # Memory: RSS after traffic, with and without the filter, one and two workers.
        memory = {}
        for row in ("B1", "T"):
            for conc in (1, 2):
                config, env = cfg[row]
                dut = Envoy(config, env, "0", concurrency=conc, name=f"{row}-rss")
                dut.wait_ready()
                for _ in range(4):
                    warm(row)
                time.sleep(0.5)
                memory[f"{row} c{conc}"] = dut.rss_kib()
                dut.stop()
        results["rss_kib"] = memory

        # Start to first response of the gateway, and of plain Envoy for comparison.
        starts = {}
        for row in ("B1", "T"):
            config, env = cfg[row]
            times = []
            for _ in range(3):
                dut = Envoy(config, env, "0", name=f"{row}-start")
                wait_for_200(row, timeout=60, pause=0.005)
                times.append((time.monotonic() - dut.started) * 1000)
                dut.stop()
            starts[row] = summary(times)
        results["start_to_first_response_ms"] = starts
    finally:
        stand_in.stop()
        for p in fleet:
            p.terminate()
            p.wait()

    log("core micro-benchmarks (native and wasm32)")
    results["core"] = {} if args.no_core else core_bench()
    results["wasm_bytes"] = WASM.stat().st_size
    results["machine"] = machine()
    report(results, rows)
    Path(args.out).write_text(json.dumps(results, indent=2))
    log(f"results written to {args.out}")


def machine():
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    envoy = subprocess.run([str(ENVOY), "--version"], capture_output=True, text=True).stdout.strip()
    version = re.search(r"/(\d+\.\d+\.\d+)/", envoy)
    return {"cpu": cpu, "cores": os.cpu_count(), "kernel": platform.release(),
            "envoy": version.group(1) if version else envoy, "runtime": "envoy.wasm.runtime.v8"}


def ratio(results, a, b):
    t = results["throughput_rps"]
    if a in t and b in t and t[a] and t[b]:
        return statistics.median(t[a]) / statistics.median(t[b])
    return None


def cpu_ratio(results, a, b):
    """Median CPU per request of row `a` over row `b`, when both ran."""
    cpu = results["cpu_us_per_request"]
    if a not in cpu or b not in cpu:
        return None
    return statistics.median(cpu[a]) / statistics.median(cpu[b])


def host_call_table(results):
    """The cost of one host call of each kind: the X rows over B3, per call."""
    cpu = {r: statistics.median(v) for r, v in results["cpu_us_per_request"].items() if v}
    costs = {}
    for row, name in HOST_CALL_NAMES.items():
        if row in cpu and "B3" in cpu:
            costs[name] = (cpu[row] - cpu["B3"]) / HOST_CALLS
    if "BL" in cpu and "BLH" in cpu:
        costs["one more header in a local reply"] = (cpu["BLH"] - cpu["BL"]) / 20
    if "BL" in cpu and "B0" in cpu:
        costs["a minimal filter's local reply over Envoy's own direct_response (BL - B0)"] = \
            cpu["BL"] - cpu["B0"]
    if not costs:
        return
    results["host_call_us"] = costs
    print(f"\n| host call (B3's filter making {HOST_CALLS} per request) | us per call |")
    print("| --- | --- |")
    for name, us in costs.items():
        print(f"| {name} | {us:.2f} |")


def report(results, rows):
    m = results["machine"]
    print(f"\napigw-edge benchmark: Envoy {m['envoy']} ({m['runtime']}), {m['cpu']}, {m['cores']} cores, "
          f"kernel {m['kernel']}")
    print(f"Envoy under test: --concurrency 1 on CPU 0; wrk/oha and the stand-in on CPU 1; "
          f"{len(next(iter(results['throughput_rps'].values())))} interleaved rounds.\n")
    rate = results["latency_rate_rps"]
    print(f"| row | throughput req/s (median, min-max) | CPU us per request | p50 us at {rate} req/s | p99 us |")
    print("| --- | --- | --- | --- | --- |")
    for row in rows:
        t = summary(results["throughput_rps"][row])
        cpu = statistics.median(results["cpu_us_per_request"][row])
        lat = results["latency"][row]
        p50 = statistics.median(x["p50_us"] for x in lat)
        p99s = [x["p99_us"] for x in lat]
        note = " (saturated)" if t["median"] < rate else ""
        print(f"| {row} | {t['median']:.0f} ({t['min']:.0f}-{t['max']:.0f}) | {cpu:.0f} | {p50:.0f}{note} | "
              f"{statistics.median(p99s):.0f} ({min(p99s):.0f}-{max(p99s):.0f}){note} |")
    rss = results["rss_kib"]
    per_vm = ((rss["T c2"] - rss["T c1"]) - (rss["B1 c2"] - rss["B1 c1"])) / 1024
    # T against B1 at half of T's throughput, where T is not saturated.
    half_t = results.get("latency_at_half_t", {})
    med = lambda r, k: statistics.median(x[k] for x in half_t[r])
    metrics = {
        "T/B1": ratio(results, "T", "B1"), "B3/B1": ratio(results, "B3", "B1"),
        "T/NL": ratio(results, "T", "NL"), "TH/B0": ratio(results, "TH", "B0"),
        "TH/B1": ratio(results, "TH", "B1"),
        "T-B1 p99 us": med("T", "p99_us") - med("B1", "p99_us") if half_t.get("T") and half_t.get("B1") else None,
        "rss per VM MiB": per_vm, "wasm KiB": results["wasm_bytes"] / 1024,
        "TA/T cpu": cpu_ratio(results, "TA", "T"),
        "TC/T cpu": cpu_ratio(results, "TC", "T"),
        "TP/T": ratio(results, "TP", "T"),
        "TF/B1P": ratio(results, "TF", "B1P"),
        "T/BD": ratio(results, "T", "BD"),
        "TH/BL cpu": cpu_ratio(results, "TH", "BL"),
        "N/B1": ratio(results, "N", "B1"), "N/NL": ratio(results, "N", "NL"),
        "T start ms": results["start_to_first_response_ms"]["T"]["median"],
    }
    results["metrics"] = metrics
    print("\n| target | measured | bound | holds |")
    print("| --- | --- | --- | --- |")
    holds = {}
    for label, key, op, bound in TARGETS:
        v = metrics.get(key)
        ok = v is not None and (v >= bound if op == ">=" else v <= bound)
        holds[key] = ok
        print(f"| {label} | {'n/a' if v is None else f'{v:.2f}'} | {op} {bound} | {'yes' if ok else 'NO'} |")
    results["targets_hold"] = holds
    extra = {"TSE/T": ratio(results, "TSE", "T"), "TSF/T": ratio(results, "TSF", "T"),
             "TV/T": ratio(results, "TV", "T"), "NL/B1": ratio(results, "NL", "B1"),
             "BD/B1": ratio(results, "BD", "B1"),
             "TP/B1": ratio(results, "TP", "B1"), "TP/TPD": ratio(results, "TP", "TPD"),
             "TF/TFD": ratio(results, "TF", "TFD"), "TR/T": ratio(results, "TR", "T"),
             "N/T": ratio(results, "N", "T"), "NH/TH": ratio(results, "NH", "TH"),
             "NF/B1P": ratio(results, "NF", "B1P"), "NB/B1": ratio(results, "NB", "B1"),
             "N/NB": ratio(results, "N", "NB"), "BF/B1P": ratio(results, "BF", "B1P"),
             "TF/BF": ratio(results, "TF", "BF"), "NF/NFR": ratio(results, "NF", "NFR"),
             "NP/NPR": ratio(results, "NP", "NPR"),
             "BT/BD": ratio(results, "BT", "BD"), "T/BT": ratio(results, "T", "BT"),
             "BTH/BL cpu": cpu_ratio(results, "BTH", "BL"),
             "TH/BTH cpu": cpu_ratio(results, "TH", "BTH")}
    if half_t.get("T") and half_t.get("B1"):
        print(f"\nat {results['latency_at_half_t_rate_rps']} req/s (half of T's throughput): "
              f"B1 p50 {med('B1', 'p50_us'):.0f} us, p99 {med('B1', 'p99_us'):.0f} us; "
              f"T p50 {med('T', 'p50_us'):.0f} us, p99 {med('T', 'p99_us'):.0f} us")
    results["other_ratios"] = extra
    print("\nother ratios: " + ", ".join(f"{k} {v:.2f}" for k, v in extra.items() if v is not None))
    print(f"RSS KiB: " + ", ".join(f"{k} {v}" for k, v in rss.items()) + f"; per extra worker VM {per_vm:.1f} MiB")
    s = results["start_to_first_response_ms"]
    print("start to first response ms: " + ", ".join(f"{k} {v['median']:.0f} ({v['min']:.0f}-{v['max']:.0f})"
                                                     for k, v in s.items()))
    print(f"release .wasm: {results['wasm_bytes']} bytes ({results['wasm_bytes'] / 1024:.0f} KiB)")
    host_call_table(results)
    print("\n| core step | native ns | wasm32 ns (Node) | wasm/native | native instructions |")
    print("| --- | --- | --- | --- | --- |")
    for k, v in results["core"].items():
        w = v["wasm_ns"]
        ins = v.get("native_instructions")
        ins = f"{ins:,.0f}" if ins else ""
        print(f"| {k} | {v['native_ns']:.0f} | {w:.0f} | {v['wasm_over_native']:.2f} | {ins} |" if w else
              f"| {k} | {v['native_ns']:.0f} | n/a | n/a | {ins} |")


if __name__ == "__main__":
    main()
