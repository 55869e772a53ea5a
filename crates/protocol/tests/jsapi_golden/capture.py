import socket, json, sys, time
s = socket.create_connection(("127.0.0.1", 14333))
import select
class R:
    def __init__(self,s): self.s=s; self.buf=b""
    def fill(self, timeout):
        r,_,_=select.select([self.s],[],[],timeout)
        if not r: raise TimeoutError()
        d=self.s.recv(65536)
        if not d: raise EOFError()
        self.buf+=d
    def readline(self, timeout=1.0):
        while b"\r\n" not in self.buf: self.fill(timeout)
        i=self.buf.index(b"\r\n")+2; l=self.buf[:i]; self.buf=self.buf[i:]; return l
    def read(self, n, timeout=1.0):
        while len(self.buf)<n: self.fill(timeout)
        d=self.buf[:n]; self.buf=self.buf[n:]; return d
f=R(s)
info=f.readline()
s.sendall(b'CONNECT {"verbose":false,"pedantic":false,"headers":true,"no_responders":true,"protocol":1}\r\nSUB _INBOX.x.* 1\r\nPING\r\n')
while f.readline().strip() != b"PONG": pass
n = [0]
def req(subj, body=b"", hdr=None):
    n[0]+=1
    reply = f"_INBOX.x.{n[0]}"
    if isinstance(body, str): body = body.encode()
    if hdr:
        h = hdr.encode()
        s.sendall(f"HPUB {subj} {reply} {len(h)} {len(h)+len(body)}\r\n".encode()+h+body+b"\r\n")
    else:
        s.sendall(f"PUB {subj} {reply} {len(body)}\r\n".encode()+body+b"\r\n")
    out=[]
    try:
        while True:
            line = f.readline()
            if not line: break
            parts = line.split()
            if parts[0]==b"PING": s.sendall(b"PONG\r\n"); continue
            if parts[0]==b"INFO": continue
            if parts[0]==b"MSG":
                sz=int(parts[-1]); data=f.read(sz+2)[:-2]; out.append({"subject":parts[1].decode(),"reply":(parts[3].decode() if len(parts)==5 else None),"payload":data.decode()})
            elif parts[0]==b"HMSG":
                hs=int(parts[-2]); tot=int(parts[-1]); data=f.read(tot+2)[:-2]
                out.append({"subject":parts[1].decode(),"reply":(parts[3].decode() if len(parts)==6 else None),"headers":data[:hs].decode(),"payload":data[hs:].decode()})
            else:
                out.append({"other":line.decode()})
            if len(out)>=1 and not (b"DIRECT" in subj.encode() and b'"batch"' in body):
                break
    except Exception as e:
        pass
    print(json.dumps({"request":{"subject":subj,"body":body.decode(),"hdr":hdr},"replies":out}))
req("$JS.API.INFO")
req("$JS.API.STREAM.NAMES")
req("$JS.API.STREAM.LIST")
req("$JS.API.STREAM.CREATE.FULL", '{"name":"FULL","description":"all the fields","subjects":["full.>"],"retention":"interest","max_consumers":10,"max_msgs":1000,"max_bytes":1048576,"max_age":3600000000000,"max_msgs_per_subject":5,"max_msg_size":65536,"discard":"new","storage":"memory","num_replicas":1,"duplicate_window":60000000000,"compression":"s2","allow_direct":true,"allow_rollup_hdrs":true,"deny_delete":true,"allow_msg_ttl":true,"discard_new_per_subject":true,"consumer_limits":{"inactive_threshold":10000000000,"max_ack_pending":100},"metadata":{"owner":"team-a"}}')
req("$JS.API.STREAM.CREATE.MIR", '{"name":"MIR","mirror":{"name":"FULL"}}')
req("$JS.API.CONSUMER.CREATE.FULL.PUSH", '{"stream_name":"FULL","config":{"name":"PUSH","deliver_subject":"push.out","ack_policy":"explicit","max_ack_pending":50,"idle_heartbeat":5000000000,"flow_control":true,"backoff":[1000000000,2000000000],"max_deliver":5,"filter_subjects":["full.a","full.b"],"headers_only":true}}')
req("$JS.API.CONSUMER.CREATE.FULL.BAD", '{"stream_name":"FULL","config":{"name":"BAD","max_ack_pending":500}}')
req("$JS.API.CONSUMER.LIST.FULL")
req("$JS.API.STREAM.CREATE.TTL", '{"name":"TTL","subject_delete_marker_ttl":500000000}')
req("$JS.API.STREAM.CREATE.TTL", '{"name":"TTL","max_age":1000000000,"duplicate_window":5000000000}')
req("$JS.API.STREAM.CREATE.TTL", '{"name":"TTL","max_age":1000000000}')
req("$JS.API.STREAM.CREATE.SYS", '{"name":"SYS","subjects":["$JS.API.>"]}')
req("$JS.API.STREAM.CREATE.ROLL", '{"name":"ROLL","deny_purge":true,"allow_rollup_hdrs":true}')
req("$JS.API.STREAM.CREATE.ORDERS", '{"name":"ORDERS","subjects":["orders.*"]}')
req("$JS.API.STREAM.CREATE.ORDERS", '{"name":"ORDERS","subjects":["orders.*"],"max_msgs":5}')
req("$JS.API.STREAM.CREATE.OTHER", '{"name":"OTHER","subjects":["orders.new"]}')
req("$JS.API.STREAM.CREATE.bad.name", '{"name":"bad.name"}')
req("$JS.API.STREAM.CREATE.X", '{"name":"Y"}')
req("$JS.API.STREAM.CREATE.X", '{"name":"X","subjects":["a.*","a.b"]}')
req("$JS.API.STREAM.CREATE.X", '{"name":"X","discard_new_per_subject":true}')
req("$JS.API.STREAM.CREATE.X", '{"name":"X",')
req("$JS.API.STREAM.INFO.NOPE")
req("orders.new", "hello")
req("orders.new", "world", "NATS/1.0\r\nNats-Msg-Id: m1\r\n\r\n")
req("orders.new", "world", "NATS/1.0\r\nNats-Msg-Id: m1\r\n\r\n")
req("orders.new", "x", "NATS/1.0\r\nNats-Expected-Last-Sequence: 1\r\n\r\n")
req("orders.new", "x", "NATS/1.0\r\nNats-Expected-Stream: FOO\r\n\r\n")
req("$JS.API.STREAM.INFO.ORDERS")
req("$JS.API.STREAM.INFO.ORDERS", '{"subjects_filter":">"}')
req("$JS.API.STREAM.NAMES", '{"offset":0}')
req("$JS.API.STREAM.LIST", '')
req("$JS.API.STREAM.MSG.GET.ORDERS", '{"seq":1}')
req("$JS.API.STREAM.MSG.GET.ORDERS", '{"seq":99}')
req("$JS.API.STREAM.MSG.GET.ORDERS", '{"last_by_subj":"orders.new"}')
req("$JS.API.STREAM.UPDATE.ORDERS", '{"name":"ORDERS","subjects":["orders.*"],"storage":"memory"}')
req("$JS.API.DIRECT.GET.ORDERS", '{"seq":1}')
req("$JS.API.STREAM.CREATE.KV_b", '{"name":"KV_b","subjects":["$KV.b.>"],"allow_direct":true,"max_msgs_per_subject":1,"allow_rollup_hdrs":true,"deny_delete":true,"discard":"new"}')
req("$KV.b.k1", "v1")
req("$JS.API.DIRECT.GET.KV_b.$KV.b.k1")
req("$JS.API.DIRECT.GET.KV_b.$KV.b.k2")
req("$JS.API.DIRECT.GET.KV_b", '{"seq":1,"batch":2}')
req("$JS.API.CONSUMER.CREATE.ORDERS.C1", '{"stream_name":"ORDERS","config":{"name":"C1","ack_policy":"explicit"},"action":"create"}')
req("$JS.API.CONSUMER.CREATE.ORDERS.C1", '{"stream_name":"ORDERS","config":{"name":"C1","ack_policy":"none"},"action":"create"}')
req("$JS.API.CONSUMER.DURABLE.CREATE.ORDERS.D1", '{"stream_name":"ORDERS","config":{"durable_name":"D1","deliver_policy":"by_start_sequence"}}')
req("$JS.API.CONSUMER.INFO.ORDERS.NOPE")
req("$JS.API.CONSUMER.MSG.NEXT.ORDERS.C1", '{"batch":1,"no_wait":true}')
req("$JS.API.CONSUMER.MSG.NEXT.ORDERS.C1", '{"batch":1,"no_wait":true}')
req("$JS.API.CONSUMER.INFO.ORDERS.C1")
req("$JS.API.CONSUMER.NAMES.ORDERS")

def cc(name, cfg, subj=None):
    import json as _j
    req(subj or f"$JS.API.CONSUMER.CREATE.ORDERS.{name}", _j.dumps({"stream_name":"ORDERS","config":cfg}))
cc("E1", {"name":"E1","deliver_subject":"out","max_waiting":5})
cc("E2", {"name":"E2","deliver_subject":"orders.x"})
cc("E3", {"name":"E3","deliver_subject":"out.*"})
cc("E4", {"name":"E4","filter_subjects":["orders.*","orders.a"]})
cc("E5", {"name":"E5","deliver_policy":"last_per_subject"})
cc("E6", {"name":"E6","deliver_policy":"by_start_time","opt_start_time":"2026-01-01T00:00:00+02:00","opt_start_seq":3})
cc("E7", {"name":"E7","idle_heartbeat":1000000000})
cc("E8", {"name":"E8","ack_policy":"explicit","backoff":[1000000000,2000000000,3000000000],"max_deliver":2})
cc("E9", {"name":"E9","deliver_subject":"out","ack_policy":"none","max_ack_pending":10})
cc("E10", {"name":"E10","filter_subject":"orders.a","filter_subjects":["orders.b"]})
cc("E11", {"name":"E11","durable_name":"OTHER"})
cc("E12", {"name":"E12","priority_policy":"overflow"})
cc("E13", {"name":"E13","deliver_subject":"out","flow_control":True})
cc("E14", {"name":"E14","rate_limit_bps":100})
cc("E15", {"name":"E15","num_replicas":3})
cc("E16", {"name":"E16","sample_freq":"x%"})
cc("E17", {"name":"E17","filter_subject":"orders.b"}, "$JS.API.CONSUMER.CREATE.ORDERS.E17.orders.a")
cc("E18", {"durable_name":"E18"}, "$JS.API.CONSUMER.CREATE.ORDERS")
cc("E19", {"name":"E19","deliver_policy":"by_start_time","opt_start_time":"2026-01-01T00:00:00+02:00"})
cc("E20", {"name":"E20","ack_policy":"explicit","ack_wait":-5})
cc("E21", {"name":"E21","max_batch":-1,"max_expires":500000})
req("$JS.API.STREAM.CREATE.DUPS", '{"name":"DUPS","subjects":["d.a","d.a"]}')
req("$JS.API.STREAM.CREATE.ALL", '{"name":"ALL","subjects":[">"]}')
req("$JS.API.STREAM.CREATE.MAXAGE", '{"name":"MAXAGE","max_age":50000000}')
req("$JS.API.STREAM.CREATE.REPL", '{"name":"REPL","num_replicas":7}')
req("$JS.API.STREAM.CREATE.PLACE", '{"name":"PLACE","placement":{"preferred":"x"}}')
req("$JS.API.STREAM.CREATE.CNT", '{"name":"CNT","allow_msg_counter":true,"discard":"new"}')
req("$JS.API.STREAM.CREATE.SEAL", '{"name":"SEAL","sealed":true}')
req("$JS.API.STREAM.CREATE.MD", '{"name":"MD","mirror_direct":true}')
req("$JS.API.STREAM.CREATE.RP", '{"name":"RP","subjects":["rp.>"],"republish":{"dest":"rp.x"}}')
req("$JS.API.STREAM.CREATE.NAMEBAD", '{"name":"NAME BAD"}')
req("$JS.API.STREAM.CREATE.DWN", '{"name":"DWN","duplicate_window":-1}')
req("$JS.API.STREAM.CREATE.SRC", '{"name":"SRC","sources":[{"name":"A"},{"name":"A"}]}')
req("$JS.API.STREAM.CREATE.MSUB", '{"name":"MSUB","subjects":["m.x"],"mirror":{"name":"ORDERS"}}')
req("$JS.API.STREAM.MSG.DELETE.ORDERS", '{"seq":1}')
req("$JS.API.STREAM.PURGE.ORDERS", '{"filter":"orders.new","keep":1}')
req("$JS.API.STREAM.PURGE.ORDERS", '{"seq":2,"keep":1}')
req("$JS.API.CONSUMER.DELETE.ORDERS.C1")
req("$JS.API.STREAM.DELETE.ORDERS")
req("$JS.API.STREAM.BOGUS")
