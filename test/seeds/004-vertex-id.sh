#!/usr/bin/env bash
# Seed 004: Google's Vertex AI "tune Gemini Pro with supervised tuning" guide (Indonesian edition, v1
# tuningJobs), its curl flow transcribed as written: create (REST with request.json, then the "Contoh perintah
# curl" example), list, get, cancel, and a prediction on the tuned model's endpoint.
# Only the base URL, the credentials and the seed's placeholders differ from the seed:
#   https://TUNING_JOB_REGION-aiplatform.googleapis.com, https://${LOCATION}-aiplatform.googleapis.com -> $ATTUNE_URL
#   $(gcloud auth print-access-token) -> $ATTUNE_API_KEY (a key Attune issued)
#   PROJECT_ID (PROJECT_ID=myproject in the curl example) -> $ATTUNE_PROJECT (that key's project; Attune checks
#     that the path's project is the key's)
#   TUNING_JOB_REGION, LOCATION -> us-central1 (the curl example's)
#   BASE_MODEL -> gemini-1.0-pro-002 (the one value the seed allows)
#   TRAINING_DATASET_URI, VALIDATION_DATASET_URI -> the curl example's
#     gs://cloud-samples-data/ai-platform/generative_ai/sft_{train,validation}_data.jsonl, which this script
#     first uploads to Attune's object store under that bucket and name (not in the seed): the 15 number
#     examples of examples/numbers.jsonl for training and 4 held-out ones for validation, in the Gemini
#     `contents` format the seed's dataset page describes
#   EPOCH_COUNT -> 50 (what the embedded model needs to learn 15 examples), LEARNING_RATE_MULTIPLIER -> 1.0
#     (the default the seed's console steps name), TUNED_MODEL_DISPLAYNAME -> tuned_gemini_pro (the curl example's)
#   TUNING_JOB_ID -> the id of a job this script created (the last segment of its name)
#   ENDPOINT_ID -> the last segment of the tuned job's tunedModel.endpoint ("dari GET API")
#   TEMPERATURE -> 0, TOP_P -> 0.95, TOP_K -> 40, MAX_OUTPUT_TOKENS -> 20
# The cancel step needs a job that is still running: the script creates one more with the first request.json
# and EPOCH_COUNT -> 5000 (minutes of training), waits until it is JOB_STATE_RUNNING, then cancels it.
# Steps the seed does in Python are replaced by jq/bash and marked "Python in the seed:".
# Lines marked "check (not in the seed)" make the script fail where the seed's flow expects success.
# Runs in the current directory (it writes request.json, as the seed does, and the JSON files named below).
# SEED_POLL_SECONDS overrides the seed's 60 s polling interval (only the interval; the polling is the seed's).
set -euo pipefail

: "${ATTUNE_URL:?set ATTUNE_URL to the Attune base URL}"
: "${ATTUNE_API_KEY:?set ATTUNE_API_KEY to an Attune API key}"
: "${ATTUNE_PROJECT:?set ATTUNE_PROJECT to the project of that key}"
fail() {
  echo "seed 004: $*" >&2
  exit 1
}
poll_seconds=${SEED_POLL_SECONDS:-60}
examples=$(dirname "${BASH_SOURCE[0]}")/../../examples/numbers.jsonl

PROJECT_ID=$ATTUNE_PROJECT
TUNING_JOB_REGION=us-central1

echo '== seed 004: upload the datasets (not in the seed)'
# The seed's gs:// objects, uploaded to Attune's store with the Cloud Storage JSON API (media upload).
jq -c '{contents: [{role: "user", parts: [{text: .text_input}]}, {role: "model", parts: [{text: .output}]}]}' \
  "$examples" > sft_train_data.jsonl
cat > sft_validation_data.jsonl << 'EOF'
{"contents": [{"role": "user", "parts": [{"text": "5"}]}, {"role": "model", "parts": [{"text": "6"}]}]}
{"contents": [{"role": "user", "parts": [{"text": "forty one"}]}, {"role": "model", "parts": [{"text": "forty two"}]}]}
{"contents": [{"role": "user", "parts": [{"text": "-10"}]}, {"role": "model", "parts": [{"text": "-9"}]}]}
{"contents": [{"role": "user", "parts": [{"text": "six"}]}, {"role": "model", "parts": [{"text": "seven"}]}]}
EOF
for object in sft_train_data.jsonl sft_validation_data.jsonl; do
  curl -s -X POST \
    -H "Authorization: Bearer ${ATTUNE_API_KEY}" \
    -H "Content-Type: application/jsonl" \
    --data-binary @"$object" \
    "${ATTUNE_URL}/upload/storage/v1/b/cloud-samples-data/o?uploadType=media&name=ai-platform/generative_ai/${object}" > uploaded.json
  jq -e --arg name "ai-platform/generative_ai/${object}" '.bucket == "cloud-samples-data" and .name == $name' uploaded.json > /dev/null ||
    fail "upload of ${object} failed: $(cat uploaded.json)"
  echo "gs://cloud-samples-data/ai-platform/generative_ai/${object}: $(jq -r .size uploaded.json) bytes"
done

echo '== seed 004: create (request.json)'
# Membuat tugas tuning, REST. "Simpan isi permintaan dalam file bernama request.json" (one line, as printed):
cat > request.json << 'EOF'
{ "baseModel": "gemini-1.0-pro-002", "supervisedTuningSpec" : { "training_dataset_uri": "gs://cloud-samples-data/ai-platform/generative_ai/sft_train_data.jsonl", "validation_dataset_uri": "gs://cloud-samples-data/ai-platform/generative_ai/sft_validation_data.jsonl", "hyper_parameters": { "epoch_count": 50, "learning_rate_multiplier": 1.0 }, }, "tunedModelDisplayName": "tuned_gemini_pro", }
EOF
# FIXED (the one change to the seed's request besides the placeholders): the seed prints
# `"tunedModelDisplayName": "TUNED_MODEL_DISPLAYNAME, }` with no closing quote. The string then runs to the end
# of the body, which is not JSON, and create answers 400 INVALID_ARGUMENT ("Unterminated string in JSON"), as
# Google's would. The closing quote is added; the trailing commas are kept (Attune accepts them).
cp request.json request_tuning.json
# The seed's command as written; its output is also kept in tuning_job.json to check it.
curl -X POST \
-H "Authorization: Bearer ${ATTUNE_API_KEY}" \
-H "Content-Type: application/json; charset=utf-8" \
-d @request.json \
"${ATTUNE_URL}/v1/projects/${PROJECT_ID}/locations/${TUNING_JOB_REGION}/tuningJobs" | tee tuning_job.json
echo
# check (not in the seed): a TuningJob with the request's hyper-parameters came back, not an error.
jq -e '(.name | test("^projects/[^/]+/locations/us-central1/tuningJobs/[0-9]+$")) and .state == "JOB_STATE_PENDING"
  and .supervisedTuningSpec.hyperParameters.epochCount == "50" and .tunedModelDisplayName == "tuned_gemini_pro"' tuning_job.json > /dev/null ||
  fail "create did not return a pending TuningJob: $(cat tuning_job.json)"
TUNING_JOB_ID=$(jq -r '.name | split("/") | last' tuning_job.json)

echo '== seed 004: create (contoh perintah curl)'
# Contoh perintah curl. As written, with PROJECT_ID's value and the host changed; its output is also kept in
# tuning_job_example.json to check it.
PROJECT_ID=$ATTUNE_PROJECT
LOCATION=us-central1
curl \
-X POST \
-H "Authorization: Bearer ${ATTUNE_API_KEY}" \
-H "Content-Type: application/json; charset=utf-8" \
"${ATTUNE_URL}/v1/projects/${PROJECT_ID}/locations/${LOCATION}/tuningJobs" \
-d \
$'{
"baseModel": "gemini-1.0-pro-002",
"supervisedTuningSpec" : {
"training_dataset_uri": "gs://cloud-samples-data/ai-platform/generative_ai/sft_train_data.jsonl",
"validation_dataset_uri": "gs://cloud-samples-data/ai-platform/generative_ai/sft_validation_data.jsonl"
},
"tunedModelDisplayName": "tuned_gemini_pro"
}' | tee tuning_job_example.json
echo
# check (not in the seed): a TuningJob came back, not an error.
jq -e '(.name | test("^projects/[^/]+/locations/us-central1/tuningJobs/[0-9]+$")) and .state == "JOB_STATE_PENDING"' tuning_job_example.json > /dev/null ||
  fail "create (curl example) did not return a pending TuningJob: $(cat tuning_job_example.json)"

echo '== seed 004: list'
# Melihat daftar tugas tuning. The seed's command as written; its output is also kept in tuning_jobs.json.
curl -X GET \
-H "Authorization: Bearer ${ATTUNE_API_KEY}" \
"${ATTUNE_URL}/v1/projects/${PROJECT_ID}/locations/${TUNING_JOB_REGION}/tuningJobs" | tee tuning_jobs.json
echo
# check (not in the seed): both jobs are listed.
jq -e --slurpfile first tuning_job.json --slurpfile example tuning_job_example.json \
  '[.tuningJobs[].name] as $names | ($names | index($first[0].name)) != null and ($names | index($example[0].name)) != null' tuning_jobs.json > /dev/null ||
  fail "the list does not hold both jobs: $(cat tuning_jobs.json)"

echo '== seed 004: get'
# Mendapatkan detail tugas tuning, for the request.json job (TUNING_JOB_ID), as written:
curl -X GET \
-H "Authorization: Bearer ${ATTUNE_API_KEY}" \
"${ATTUNE_URL}/v1/projects/${PROJECT_ID}/locations/${TUNING_JOB_REGION}/tuningJobs/${TUNING_JOB_ID}" | tee tuning_job_get.json
echo

echo '== seed 004: wait for the job'
# Python in the seed (after sft.train):
#   # Polling for job completion
#   while not sft_tuning_job.has_ended:
#   time.sleep(60)
#   sft_tuning_job.refresh()
#   print(sft_tuning_job.tuned_model_name)
#   print(sft_tuning_job.tuned_model_endpoint_name)
#   print(sft_tuning_job.experiment)
# (printed without its indentation) where refresh() is the get above and has_ended is state in {SUCCEEDED,
# FAILED, CANCELLED, PAUSED} (vertexai.tuning); tuned_model_name is tunedModel.model, tuned_model_endpoint_name
# tunedModel.endpoint, and experiment is None when the job has none.
has_ended='.state | IN("JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_PAUSED")'
until jq -e "$has_ended" tuning_job_get.json > /dev/null; do
  sleep "$poll_seconds"
  curl -s -X GET \
    -H "Authorization: Bearer ${ATTUNE_API_KEY}" \
    "${ATTUNE_URL}/v1/projects/${PROJECT_ID}/locations/${TUNING_JOB_REGION}/tuningJobs/${TUNING_JOB_ID}" > tuning_job_get.json
  echo "$(jq -r .state tuning_job_get.json) $(jq -c '.tuningJobMetadata // {}' tuning_job_get.json)"
done
jq -r '.tunedModel.model // ""' tuning_job_get.json
jq -r '.tunedModel.endpoint // ""' tuning_job_get.json
jq -r '.experiment // "None"' tuning_job_get.json
# check (not in the seed): the job succeeded and has its tuned model and endpoint.
jq -e '.state == "JOB_STATE_SUCCEEDED" and (.tunedModel.model | test("/models/[0-9]+@1$")) and (.tunedModel.endpoint | test("^projects/[^/]+/locations/us-central1/endpoints/[0-9]+$"))' tuning_job_get.json > /dev/null ||
  fail "the tuning job did not succeed with a tuned model: $(cat tuning_job_get.json)"
ENDPOINT_ID=$(jq -r '.tunedModel.endpoint | split("/") | last' tuning_job_get.json)

echo '== seed 004: cancel'
# The cancel step needs a running job (not in the seed): the first request.json with EPOCH_COUNT -> 5000.
sed 's/"epoch_count": 50,/"epoch_count": 5000,/' request_tuning.json > request.json
grep -q '"epoch_count": 5000,' request.json || fail "could not set EPOCH_COUNT in request.json"
curl -s -X POST \
-H "Authorization: Bearer ${ATTUNE_API_KEY}" \
-H "Content-Type: application/json; charset=utf-8" \
-d @request.json \
"${ATTUNE_URL}/v1/projects/${PROJECT_ID}/locations/${TUNING_JOB_REGION}/tuningJobs" > cancel_job.json
jq -e '.name | test("/tuningJobs/[0-9]+$")' cancel_job.json > /dev/null || fail "create (to cancel) failed: $(cat cancel_job.json)"
TUNING_JOB_ID=$(jq -r '.name | split("/") | last' cancel_job.json)
# Wait until it is running (not in the seed), with the seed's get.
cp cancel_job.json cancel_job_get.json
until jq -e '.state == "JOB_STATE_RUNNING"' cancel_job_get.json > /dev/null; do
  jq -e '.state == "JOB_STATE_PENDING"' cancel_job_get.json > /dev/null || fail "the job to cancel is not pending or running: $(cat cancel_job_get.json)"
  sleep "$poll_seconds"
  curl -s -X GET \
    -H "Authorization: Bearer ${ATTUNE_API_KEY}" \
    "${ATTUNE_URL}/v1/projects/${PROJECT_ID}/locations/${TUNING_JOB_REGION}/tuningJobs/${TUNING_JOB_ID}" > cancel_job_get.json
done
cp cancel_job_get.json cancel_job_running.json
echo "tuningJobs/${TUNING_JOB_ID}: $(jq -r .state cancel_job_running.json) $(jq -c '.tuningJobMetadata // {}' cancel_job_running.json)"
# Membatalkan tugas tuning, for that job (TUNING_JOB_ID). The seed's command as written; its output is
# also kept in cancelled.json.
curl -X POST \
-H "Authorization: Bearer ${ATTUNE_API_KEY}" \
-H "Content-Type: application/json; charset=utf-8" \
-d "" \
"${ATTUNE_URL}/v1/projects/${PROJECT_ID}/locations/${TUNING_JOB_REGION}/tuningJobs/${TUNING_JOB_ID}:cancel" | tee cancelled.json
echo
# check (not in the seed): cancel answers google.protobuf.Empty, and the job ends cancelled with error.code 1
# (google.rpc.Code.CANCELLED), polled as the seed's Python polls (cancelling is asynchronous).
jq -e '. == {}' cancelled.json > /dev/null || fail "cancel did not answer {}: $(cat cancelled.json)"
until jq -e "$has_ended" cancel_job_get.json > /dev/null; do
  sleep "$poll_seconds"
  curl -s -X GET \
    -H "Authorization: Bearer ${ATTUNE_API_KEY}" \
    "${ATTUNE_URL}/v1/projects/${PROJECT_ID}/locations/${TUNING_JOB_REGION}/tuningJobs/${TUNING_JOB_ID}" > cancel_job_get.json
done
echo "tuningJobs/${TUNING_JOB_ID}: $(jq -r .state cancel_job_get.json) $(jq -c '.error' cancel_job_get.json)"
jq -e '.state == "JOB_STATE_CANCELLED" and .error.code == 1' cancel_job_get.json > /dev/null ||
  fail "the job did not end cancelled with error.code 1: $(cat cancel_job_get.json)"

echo '== seed 004: generateContent'
# Membuat prediksi dengan model yang di-tuning. "Simpan isi permintaan dalam file bernama request.json" (one
# line, as printed):
cat > request.json << 'EOF'
{ "contents": [ { "role": "USER", "parts": { "text" : "Why is sky blue?" } } ], "generation_config": { "temperature":0, "top_p": 0.95, "top_k": 40, "max_output_tokens": 20 } }
EOF
# The seed's command as written; its output is also kept in answer.json to check it.
curl -X POST \
-H "Authorization: Bearer ${ATTUNE_API_KEY}" \
-H "Content-Type: application/json; charset=utf-8" \
-d @request.json \
"${ATTUNE_URL}/v1/projects/${PROJECT_ID}/locations/${TUNING_JOB_REGION}/endpoints/${ENDPOINT_ID}:generateContent" | tee answer.json
echo
# check (not in the seed): a candidate from the model with non-empty text came back.
jq -e '.candidates[0].content.role == "model" and ([.candidates[0].content.parts[]?.text // empty] | join("") | length > 0)' answer.json > /dev/null ||
  fail "generateContent gave no text: $(cat answer.json)"

echo '== seed 004: generateContent on a training example (not in the seed)'
# check (not in the seed): the same request with one of the training examples as its text; greedily
# (temperature 0) the tuned model answers "twenty three".
sed 's/"Why is sky blue?"/"twenty two"/' request.json > request_number.json
curl -s -X POST \
-H "Authorization: Bearer ${ATTUNE_API_KEY}" \
-H "Content-Type: application/json; charset=utf-8" \
-d @request_number.json \
"${ATTUNE_URL}/v1/projects/${PROJECT_ID}/locations/${TUNING_JOB_REGION}/endpoints/${ENDPOINT_ID}:generateContent" > answer_number.json
cat answer_number.json
echo
answer=$(jq -r '[.candidates[0].content.parts[]?.text // empty] | join("")' answer_number.json)
[[ "$answer" == "twenty three" ]] || fail "the tuned model answered \"twenty two\" with \"$answer\", not \"twenty three\": $(cat answer_number.json)"
echo '== seed 004: done'
