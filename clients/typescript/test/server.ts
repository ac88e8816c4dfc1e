/** A tiny real HTTP server for the client's tests: each test scripts its answers. */

import { type IncomingHttpHeaders, type Server, createServer } from "node:http";
import type { AddressInfo } from "node:net";

export interface Seen {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
}

export interface Answer {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

export type Handler = (request: Seen, seen: Seen[]) => Answer;

export interface TestServer {
  baseUrl: string;
  seen: Seen[];
  close(): Promise<void>;
}

export const PROBLEM_JSON = "application/problem+json";

export function problem(status: number, error: string, extra: Record<string, unknown> = {}): Answer {
  return {
    status,
    headers: { "Content-Type": PROBLEM_JSON, ...((extra.headers as Record<string, string>) ?? {}) },
    body: {
      type: `https://minequest.dev/problems/${error}`,
      title: "Problem",
      status,
      error,
      detail: `${error} (test)`,
      request_id: "req-1",
      ...extra,
      headers: undefined,
    },
  };
}

export async function serve(handler: Handler): Promise<TestServer> {
  const seen: Seen[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      const request: Seen = {
        method: req.method ?? "",
        path: req.url ?? "",
        headers: req.headers,
        body: Buffer.concat(chunks).toString(),
      };
      seen.push(request);
      const answer = handler(request, seen);
      const text =
        answer.body === undefined
          ? ""
          : typeof answer.body === "string"
            ? answer.body
            : JSON.stringify(answer.body);
      res.writeHead(answer.status, {
        "Content-Type": "application/json",
        ...answer.headers,
      });
      res.end(text);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    baseUrl: `http://127.0.0.1:${port}/api`,
    seen,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((error) => (error ? reject(error) : resolve()));
      }),
  };
}
