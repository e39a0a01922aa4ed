/* libFuzzer target: bytes as the JSON body of an Engine API response. It
 * runs docker_error_from_response, which every failed request goes through,
 * and reads the fields that wait, create and inspect responses are read for.
 * NOTE: those three readers are static in backends/docker.c, so this target
 * repeats their cJSON look-ups rather than calling them. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backends/docker.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const int statuses[] = {200, 201, 204, 304, 404, 409, 500};

static void read_fields(const char *body, size_t len)
{
  cJSON *json = cJSON_ParseWithLength(body, len);
  const cJSON *code = cJSON_GetObjectItemCaseSensitive(json, "StatusCode");
  const cJSON *error = cJSON_GetObjectItemCaseSensitive(json, "Error");
  const cJSON *message = cJSON_GetObjectItemCaseSensitive(error, "Message");
  const cJSON *id = cJSON_GetObjectItemCaseSensitive(json, "Id");
  const cJSON *state = cJSON_GetObjectItemCaseSensitive(json, "State");
  const cJSON *oom = cJSON_GetObjectItemCaseSensitive(state, "OOMKilled");
  volatile int sink = 0;

  if (cJSON_IsNumber(code))
    sink += code->valueint;
  if (cJSON_IsString(message))
    sink += (int)strlen(message->valuestring);
  if (cJSON_IsString(id))
    sink += (int)strspn(id->valuestring, "0123456789abcdef");
  sink += cJSON_IsTrue(oom);
  (void)sink;
  cJSON_Delete(json);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  struct http_response resp = {0};
  struct rbx_error err;
  char *body;

  if (size < 1)
    return 0;
  /* Bodies the client delivers are NUL-terminated. */
  body = malloc(size);
  if (!body)
    return 0;
  memcpy(body, data + 1, size - 1);
  body[size - 1] = '\0';
  resp.status = statuses[data[0] % (sizeof(statuses) / sizeof(statuses[0]))];
  resp.body = body;
  resp.body_len = size - 1;
  resp.fd = -1;
  docker_error_from_response(NULL, &resp, "fuzz", &err);
  if (err.kind != RBX_ERR_DAEMON ||
      strnlen(err.message, sizeof(err.message)) == sizeof(err.message))
    abort();
  read_fields(body, size - 1);
  free(body);
  return 0;
}
