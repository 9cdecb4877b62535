// A live Rostra server for the tests: a one-server cluster started as a child process
// (ROSTRA_BIN, default the debug build in $CARGO_TARGET_DIR) on loopback with ephemeral
// ports and its own data dir; restartable on the same ports and data.
import { ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import * as net from "node:net";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";

import * as grpc from "@grpc/grpc-js";

import { HealthClient, HealthStatus } from "../src/gen/rostra/v1/catalog.js";

export const DEADLINE_MS = 60_000;

function rostraBin(): string {
  if (process.env.ROSTRA_BIN) return process.env.ROSTRA_BIN;
  const target = process.env.CARGO_TARGET_DIR ?? join(homedir(), ".cache/rostra/target");
  return join(target, "debug", "rostra");
}

export async function waitUntil(what: string, check: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + DEADLINE_MS;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting until ${what}`);
}

export class Agent {
  readonly dir = mkdtempSync(join(tmpdir(), "rostra-ts-"));
  grpcAddr = "";
  private grpcPort = "0";
  private serverPort = "0";
  private proc: ChildProcess | undefined;

  constructor(config: object = {}) {
    writeFileSync(join(this.dir, "config.json"), JSON.stringify(config));
  }

  async start(): Promise<void> {
    const args = ["agent", "-log-json", "-server", "-bootstrap-expect", "1", "-node", "ts", "-bind", "127.0.0.1", "-client", "127.0.0.1",
      "-data-dir", join(this.dir, "data"), "-grpc-port", this.grpcPort, "-server-port", this.serverPort,
      "-http-port", "0", "-dns-port", "0", "-config-file", join(this.dir, "config.json")];
    const proc = spawn(rostraBin(), args, { stdio: ["ignore", "ignore", "pipe"] });
    this.proc = proc;
    const fields = await new Promise<Record<string, string>>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("the agent never reported ready")), DEADLINE_MS);
      createInterface({ input: proc.stderr! }).on("line", (line) => {
        try {
          const v = JSON.parse(line);
          if (v.fields?.message === "agent ready") {
            clearTimeout(timer);
            resolve(v.fields);
          }
        } catch {
          // not a log line of ours
        }
      });
    });
    this.grpcAddr = fields.grpc_addr;
    this.grpcPort = this.grpcAddr.split(":").pop()!;
    this.serverPort = fields.raft_addr.split(":").pop()!;
    // Ready once the node is an alive member: it has a leader and can hold locks.
    const health = new HealthClient(this.grpcAddr, grpc.credentials.createInsecure());
    await waitUntil("the node is an alive member", () =>
      new Promise((resolve) =>
        health.node({ node: "ts", consistency: 0 }, (e, r) =>
          resolve(!e && r.checks.some((c) => c.checkId === "serfHealth" && c.status === HealthStatus.HEALTH_STATUS_PASSING)),
        ),
      ),
    );
    health.close();
  }

  async stop(): Promise<void> {
    const proc = this.proc!;
    const exited = new Promise<number | null>((resolve) => proc.once("exit", (code) => resolve(code)));
    proc.kill("SIGTERM");
    const code = await exited;
    if (code !== 0) throw new Error(`the agent exited with ${code} on SIGTERM`);
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }

  kill(): void {
    this.proc?.kill("SIGKILL");
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A TCP proxy whose connections can be cut, as a network failure would. */
export class Proxy {
  private readonly sockets = new Set<net.Socket>();
  private readonly server: net.Server;
  addr = "";

  constructor(private readonly target: string) {
    this.server = net.createServer((client) => {
      const [host, port] = this.target.split(":");
      const upstream = net.connect(Number(port), host);
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on("error", () => {});
        s.on("close", () => this.sockets.delete(s));
      }
      client.pipe(upstream).pipe(client);
    });
  }

  async listen(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    this.addr = `127.0.0.1:${(this.server.address() as net.AddressInfo).port}`;
  }

  cut(): void {
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
  }

  close(): void {
    this.cut();
    this.server.close();
  }
}
