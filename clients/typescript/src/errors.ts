import * as grpc from "@grpc/grpc-js";

/** A call the server refused or could not answer: the gRPC status and its message. */
export class RostraError extends Error {
  constructor(
    readonly code: grpc.status,
    readonly details: string,
  ) {
    super(`${grpc.status[code]}: ${details}`);
    this.name = "RostraError";
  }
}

/** A watch reopens after these (the server went away, restarted, or is busy). */
export const RETRIABLE: ReadonlySet<grpc.status> = new Set([
  grpc.status.UNAVAILABLE,
  grpc.status.UNKNOWN,
  grpc.status.INTERNAL,
  grpc.status.CANCELLED,
  grpc.status.RESOURCE_EXHAUSTED,
]);

export function fromServiceError(e: unknown): RostraError {
  const err = e as Partial<grpc.ServiceError>;
  return new RostraError(err.code ?? grpc.status.UNKNOWN, err.details ?? String(e));
}
