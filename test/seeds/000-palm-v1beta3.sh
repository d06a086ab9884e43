#!/usr/bin/env bash
# Seed 000: Google's "PaLM API tuning with curl" notebook (French edition, v1beta3), its curl flow
# transcribed as written. Only the base URL and the credentials differ from the seed:
#   base_url      https://generativelanguage.googleapis.com -> $ATTUNE_URL
#   access_token  $(gcloud auth application-default print-access-token) -> $ATTUNE_API_KEY (a key Attune issued)
#   project_id    my-project-id -> $ATTUNE_PROJECT (that key's project)
# Steps the notebook does in Python are replaced by jq/bash and marked "Python in the seed:".
# Lines marked "check (not in the seed)" make the script fail where the seed's flow expects success.
# Runs in the current directory (it writes tunemodel.json, as the seed does, and operation.json).
# SEED_POLL_SECONDS overrides the seed's 31 s polling interval (only the interval; the polling is the seed's).
set -euo pipefail

: "${ATTUNE_URL:?set ATTUNE_URL to the Attune base URL}"
: "${ATTUNE_API_KEY:?set ATTUNE_API_KEY to an Attune API key}"
: "${ATTUNE_PROJECT:?set ATTUNE_PROJECT to the project of that key}"
fail() {
  echo "seed 000: $*" >&2
  exit 1
}

# Définir des variables
# export access_token=$(gcloud auth application-default print-access-token)
export access_token=$ATTUNE_API_KEY
# export project_id=my-project-id
export project_id=$ATTUNE_PROJECT
# export base_url=https://generativelanguage.googleapis.com
export base_url=$ATTUNE_URL

echo '== seed 000: list tuned models'
# Répertorier les modèles réglés. (`| grep name` fails when the project has no tuned model yet: an empty
# list is `{}` on Google too. The seed ran it in a project that had some.)
curl -X GET ${base_url}/v1beta3/tunedModels \
-H 'Content-Type: application/json' \
-H "Authorization: Bearer ${access_token}" \
-H "x-goog-user-project: ${project_id}" | grep name

echo '== seed 000: create tuned model'
# Créer un modèle réglé
curl -X POST ${base_url}/v1beta3/tunedModels \
-H 'Content-Type: application/json' \
-H "Authorization: Bearer ${access_token}" \
-H "x-goog-user-project: ${project_id}" \
-d '
{
"display_name": "number generator model",
"base_model": "models/text-bison-001",
"tuning_task": {
"hyperparameters": {
"batch_size": 2,
"learning_rate": 0.001,
"epoch_count":3,
},
"training_data": {
"examples": {
"examples": [
{
"text_input": "1",
"output": "2",
},{
"text_input": "3",
"output": "4",
},{
"text_input": "-3",
"output": "-2",
},{
"text_input": "twenty two",
"output": "twenty three",
},{
"text_input": "two hundred",
"output": "two hundred one",
},{
"text_input": "ninety nine",
"output": "one hundred",
},{
"text_input": "8",
"output": "9",
},{
"text_input": "-98",
"output": "-97",
},{
"text_input": "1,000",
"output": "1,001",
},{
"text_input": "10,100,000",
"output": "10,100,001",
},{
"text_input": "thirteen",
"output": "fourteen",
},{
"text_input": "eighty",
"output": "eighty one",
},{
"text_input": "one",
"output": "two",
},{
"text_input": "three",
"output": "four",
},{
"text_input": "seven",
"output": "eight",
}
]
}
}
}
}' | tee tunemodel.json
echo
# check (not in the seed): an Operation came back, not an error.
jq -e '(.name | test("^tunedModels/[^/]+/operations/[^/]+$")) and (.metadata.tunedModel | startswith("tunedModels/"))' tunemodel.json > /dev/null ||
  fail "create did not return an Operation: $(cat tunemodel.json)"

echo '== seed 000: model name'
# Python in the seed:
#   import json
#   first_page = json.load(open('tunemodel.json'))
#   os.environ['modelname'] = first_page['metadata']['tunedModel']
#   print(os.environ['modelname'])
modelname=$(jq -r '.metadata.tunedModel' tunemodel.json)
export modelname
echo "$modelname"

echo '== seed 000: get state'
# Obtenir l'état du modèle réglé. As printed, the last line is `-H "…" \ | grep state`: the backslash
# escapes the space, so curl is given a second URL " " and, after printing the model, exits 3 with
# "curl: (3) URL using bad/illegal format or missing URL" (the seed's own output shows that error). grep
# still prints the state. Kept as written; pipefail is off for this one pipeline so that grep's status
# decides, as in the notebook's shell.
set +o pipefail
curl -X GET ${base_url}/v1beta3/${modelname} \
-H 'Content-Type: application/json' \
-H "Authorization: Bearer ${access_token}" \
-H "x-goog-user-project: ${project_id}" \ | grep state
set -o pipefail

echo '== seed 000: wait for the tuning operation'
# Python in the seed (the curl section has no polling step; its requests section polls the operation on v1/):
#   import time
#   import pprint
#   op_json = operation.json()
#   response = op_json.get('response')
#   error = op_json.get('error')
#   while response is None and error is None:
#     time.sleep(31)
#     operation = requests.get(
#       url = f'{base_url}/v1/{op_json["name"]}',
#       headers=headers,
#     )
#     op_json = operation.json()
#     response = op_json.get('response')
#     error = op_json.get('error')
#     percent = op_json['metadata'].get('completedPercent')
#     if percent is not None:
#       print(f"{percent:.2f}% - {op_json['metadata']['snapshots'][-1]}")
#       print()
#   if error is not None:
#     raise Exception(error)
# where headers = {'Authorization': 'Bearer ' + access_token, 'Content-Type': 'application/json',
# 'x-goog-user-project': project}, and `operation` is the create call's response (tunemodel.json here).
cp tunemodel.json operation.json
while jq -e '.response == null and .error == null' operation.json > /dev/null; do
  sleep "${SEED_POLL_SECONDS:-31}"
  op_name=$(jq -r '.name' operation.json)
  curl -s "${base_url}/v1/${op_name}" \
    -H "Authorization: Bearer ${access_token}" \
    -H 'Content-Type: application/json' \
    -H "x-goog-user-project: ${project_id}" > operation.json
  percent=$(jq -r '.metadata.completedPercent // empty' operation.json)
  if [[ -n "$percent" ]]; then
    printf '%.2f%% - %s\n\n' "$percent" "$(jq -c '.metadata.snapshots[-1]' operation.json)"
  fi
done
if jq -e '.error != null' operation.json > /dev/null; then
  fail "tuning failed: $(jq -c '.error' operation.json)"
fi
# check (not in the seed): the operation's response is the ACTIVE tuned model.
jq -e '.done == true and .response.state == "ACTIVE"' operation.json > /dev/null ||
  fail "the operation ended without an ACTIVE model: $(cat operation.json)"
echo "tuned model state: $(jq -r '.response.state' operation.json)"

echo '== seed 000: generateText'
# Exécuter une inférence. The seed's command as written; its output is kept in $answer to check it.
answer=$(curl -X POST ${base_url}/v1beta3/${modelname}:generateText \
-H 'Content-Type: application/json' \
-H "Authorization: Bearer ${access_token}" \
-H "x-goog-user-project: ${project_id}" \
-d '{
"prompt": {
"text": "4"
},
"temperature": 1.0,
"candidate_count": 2}' | grep output)
echo "$answer"
# check (not in the seed): a non-empty answer came back. The seed asks for two candidates; a candidate whose
# sampled text is empty (the tiny base model can end its answer at once) carries no "output" field, as proto3
# JSON omits empty strings, so at least one output is required here and the test checks the candidates.
outputs=$(grep -o '"output" *: *"[^"]' <<< "$answer" | wc -l)
[[ "$outputs" -ge 1 ]] || fail "expected a candidate with a non-empty output in: $answer"
echo '== seed 000: done'
