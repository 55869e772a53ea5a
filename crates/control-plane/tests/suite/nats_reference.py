# Reference run of the dedupe / expected-header / limit cases in bodies.rs against a real
# nats-server (raw NATS protocol, no client library). Run:
#   .tools/venv/bin/python3 crates/control-plane/tests/suite/nats_reference.py
# Its output (nats-server 2.15.1) is what dedupe_and_expected_headers_match_nats_server
# and limits_discard_old_and_new assert.
import socket, json, subprocess, time, tempfile, os, sys
d = tempfile.mkdtemp()
srv = subprocess.Popen(["/work/main/.tools/venv/bin/nats-server", "-js", "-a", "127.0.0.1", "-p", "14222", "-sd", d], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
time.sleep(0.7)
s = socket.create_connection(("127.0.0.1", 14222))
f = s.makefile("rb")
f.readline()
s.sendall(b'CONNECT {"verbose":false,"headers":true,"no_responders":true}\r\nSUB _R.> 1\r\nPING\r\n')
assert f.readline().startswith(b"PONG")
n = 0
def req(subj, payload=b"", hdrs=None):
    global n
    n += 1
    reply = f"_R.{n}"
    if hdrs:
        h = "NATS/1.0\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items()) + "\r\n"
        hb = h.encode()
        s.sendall(f"HPUB {subj} {reply} {len(hb)} {len(hb)+len(payload)}\r\n".encode() + hb + payload + b"\r\n")
    else:
        s.sendall(f"PUB {subj} {reply} {len(payload)}\r\n".encode() + payload + b"\r\n")
    while True:
        line = f.readline().decode().split()
        if line[0] == "PING": s.sendall(b"PONG\r\n"); continue
        if line[0] == "MSG":
            body = f.read(int(line[-1]) + 2)[:-2]
            return json.loads(body)
        if line[0] == "HMSG":
            body = f.read(int(line[-1]) + 2)[:-2]
            return {"hmsg": body.decode(errors="replace")}
def mk(name, **cfg):
    c = {"name": name, "subjects": [name.lower() + ".>"], "storage": "memory"}
    c.update(cfg)
    return req(f"$JS.API.STREAM.CREATE.{name}", json.dumps(c).encode())
def short(r):
    if "error" in r: return f"e{r['error']['err_code']}:{r['error']['description']}"
    if r.get("duplicate"): return f"dup{r['seq']}"
    return str(r.get("seq"))
mk("ORDERS")
P = lambda subj, **h: print(subj, {k: v for k, v in h.items()}, "->", short(req(subj, b"x", {k.replace("_", "-"): v for k, v in h.items()} or None)))
P("orders.a", Nats_Msg_Id="m1")
P("orders.a", Nats_Msg_Id="m1")
P("orders.b", Nats_Msg_Id="m2"); P("orders.b", Nats_Msg_Id="m2"); P("orders.c")
P("orders.a", Nats_Expected_Stream="OTHER")
P("orders.a", Nats_Expected_Stream="ORDERS")
P("orders.a", Nats_Expected_Last_Sequence="3"); P("orders.a", Nats_Expected_Last_Sequence="4"); P("orders.a", Nats_Expected_Last_Sequence="5")
P("orders.new", Nats_Expected_Last_Subject_Sequence="0"); P("orders.new", Nats_Expected_Last_Subject_Sequence="0"); P("orders.b", Nats_Expected_Last_Subject_Sequence="2")
P("orders.x", Nats_Expected_Last_Subject_Sequence="8", Nats_Expected_Last_Subject_Sequence_Subject="orders.b")
P("orders.y", Nats_Expected_Last_Subject_Sequence="7", Nats_Expected_Last_Subject_Sequence_Subject="orders.*")
P("orders.x", Nats_Expected_Last_Subject_Sequence_Subject="orders.b")
P("orders.a", Nats_Expected_Last_Msg_Id="m2")
P("orders.a", Nats_Msg_Id="m3")
P("orders.a", Nats_Expected_Last_Msg_Id="m3"); P("orders.a", Nats_Expected_Last_Msg_Id="m3")
P("orders.a", Nats_Msg_Id="m1", Nats_Expected_Last_Sequence="1")
mk("NEW", max_msgs=2, discard="new"); P("new.a"); P("new.b"); P("new.c")
mk("BYTES", max_bytes=250, discard="new"); print(req("$JS.API.STREAM.INFO.BYTES").get("error"))
mk("PS", max_msgs_per_subject=1, discard="new", discard_new_per_subject=True); P("ps.a"); P("ps.b"); P("ps.a")
mk("BIG", max_msg_size=50); r = req("big.a", b"y"*51); print("big51", short(r)); print("big50", short(req("big.a", b"y"*50)))
mk("SEAL"); P("seal.a", Nats_Rollup="sub")
srv.terminate()
