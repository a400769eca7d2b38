// Validates many documents against one draft-04 schema with ajv, in one process.
// stdin:  {"schema": {...}, "documents": [...]}
// stdout: [{"valid": bool, "errors": [{"keyword", "instancePath", "params"}]}, ...]
"use strict";

const Ajv04 = require("ajv-draft-04");

function readStdin() {
  return new Promise((resolve, reject) => {
    const chunks = [];
    process.stdin.on("data", (chunk) => chunks.push(chunk));
    process.stdin.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    process.stdin.on("error", reject);
  });
}

async function main() {
  const { schema, documents } = JSON.parse(await readStdin());
  // allErrors: every failure, as KAZOO's jesse reports them. Strict mode stays on (an
  // unknown keyword stops the run) except strictTypes: connectivity.json has no
  // top-level `type`, as KAZOO's has none.
  const ajv = new Ajv04({ allErrors: true, strictTypes: false });
  const validate = ajv.compile(schema);
  const results = documents.map((document) => {
    const valid = validate(document);
    const errors = (validate.errors || []).map(({ keyword, instancePath, params }) => ({
      keyword,
      instancePath,
      params,
    }));
    return { valid, errors };
  });
  process.stdout.write(JSON.stringify(results));
}

main().catch((error) => {
  process.stderr.write(String(error && error.stack ? error.stack : error) + "\n");
  process.exit(1);
});
