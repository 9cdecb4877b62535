// One contender for the lock test, run as its own process: takes the lock `rounds`
// times and, while holding it, writes the fenced key with CAS, refusing a token older
// than the one there. Prints one JSON line per round.
import { Client } from "../src/index.js";

const [addr, name, rounds] = process.argv.slice(2);
const client = new Client(addr);
for (let i = 0; i < Number(rounds); i++) {
  await using lock = await client.lock(name);
  const kv = await client.kv.get("fenced");
  const held = kv ? BigInt(kv.value.toString()) : 0n;
  if (lock.token <= held) throw new Error(`token ${lock.token} after ${held}`);
  const ok = await client.kv.put("fenced", String(lock.token), { cas: kv ? kv.modifyIndex : 0n });
  console.log(JSON.stringify({ pid: process.pid, token: String(lock.token), ok }));
}
client.close();
