import { type DescFile, toBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import type * as protoLoader from "@grpc/proto-loader";
import { file_grpc_health_v1_health } from "../../gen/grpc/health/v1/health_pb.js";
import { file_latchkey_v1_token_admin_service } from "../../gen/latchkey/v1/token_admin_service_pb.js";
import { file_latchkey_v1_token_verify_service } from "../../gen/latchkey/v1/token_verify_service_pb.js";

/** Every file `roots` needs, dependencies before dependents, each once (FileDescriptorSet order). */
function topologicalFiles(roots: readonly DescFile[]): DescFile[] {
  const seen = new Set<string>();
  const out: DescFile[] = [];
  const visit = (file: DescFile): void => {
    if (seen.has(file.name)) return;
    seen.add(file.name);
    for (const dep of file.dependencies) visit(dep);
    out.push(file);
  };
  for (const root of roots) visit(root);
  return out;
}

function reflectionOnly(): never {
  throw new Error("this package definition entry only carries descriptors for reflection");
}

/** The files served by reflection by default: both latchkey services. */
export const LATCHKEY_FILES: readonly DescFile[] = [
  file_latchkey_v1_token_admin_service,
  file_latchkey_v1_token_verify_service,
];

/**
 * The reflection schema: the FileDescriptorProtos protoc-gen-es embeds in the generated code
 * (so it can never drift from what is served), dependencies first, plus grpc.health.v1 from the
 * vendored health.proto (grpc-health-check ships only the .proto, and proto-loader's descriptor
 * of it is invalid for protobuf-go, which makes `buf curl` fail to resolve the Health service).
 *
 * `protoLoader.loadFileDescriptorSetFromBuffer` is not used on purpose: it rebuilds
 * descriptors from a protobufjs Root, which merges every file of a package into one (both
 * latchkey services end up in token_verify_service.proto) and drops the imports, so
 * `buf curl --reflect` cannot resolve any method. @grpc/reflection only reads each entry's
 * `fileDescriptorProtos`, so one entry carrying the exact files is all it needs.
 */
export function reflectionPackageDefinition(
  files: readonly DescFile[] = LATCHKEY_FILES,
): protoLoader.PackageDefinition {
  const fileDescriptorProtos = topologicalFiles([file_grpc_health_v1_health, ...files]).map((f) =>
    Buffer.from(toBinary(FileDescriptorProtoSchema, f.proto)),
  );
  const entry: protoLoader.MessageTypeDefinition<object, object> = {
    format: "Protocol Buffer 3 DescriptorProto",
    // Never read by @grpc/reflection; a placeholder for the protobufjs type it would hold.
    type: {} as protoLoader.MessageTypeDefinition<object, object>["type"],
    fileDescriptorProtos,
    serialize: reflectionOnly,
    deserialize: reflectionOnly,
  };
  return { "latchkey.reflection": entry };
}
