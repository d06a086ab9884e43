#!/usr/bin/env bash
# Seed 003: Google's Gemini API tuning guide in bash (German edition, v1beta, ?key=), transcribed as
# written. Only the base URL and the credentials differ from the seed:
#   https://generativelanguage.googleapis.com -> $ATTUNE_URL
#   $GOOGLE_API_KEY and ${access_token} -> $ATTUNE_API_KEY (a key Attune issued)
#   ${project_id} -> $ATTUNE_PROJECT (that key's project)
# Lines marked "check (not in the seed)" make the script fail where the seed's flow expects success.
# Runs in the current directory (it writes tuned_models.json, tuned_models2.json, tunemodel.json,
# tuning_operation.json and tuned_model.json, as the seed does). Needs TERM set to a real terminal type for
# the seed's `tput cuu1` / `tput el` (with TERM unset tput exits 2, with TERM=dumb it exits 1).
set -euo pipefail

: "${ATTUNE_URL:?set ATTUNE_URL to the Attune base URL}"
: "${ATTUNE_API_KEY:?set ATTUNE_API_KEY to an Attune API key}"
: "${ATTUNE_PROJECT:?set ATTUNE_PROJECT to the project of that key}"
fail() {
  echo "seed 003: $*" >&2
  exit 1
}

# "Projekt und API-Schlüssel einrichten": the seed expects these in the environment.
GOOGLE_API_KEY=$ATTUNE_API_KEY
access_token=$ATTUNE_API_KEY
project_id=$ATTUNE_PROJECT

echo '== seed 003: list tuned models'
# Abgestimmte Modelle auflisten. (`jq .tunedModels[].name` fails with "Cannot iterate over null" when the
# project has no tuned model: an empty list is `{}` on Google too. The seed assumes existing models.)
# Sending a page_size is optional
curl -X GET $ATTUNE_URL/v1beta/tunedModels?page_size=5 \
-H "Content-Type: application/json" \
-H "Authorization: Bearer ${access_token}" \
-H "x-goog-user-project: ${project_id}" > tuned_models.json
jq .tunedModels[].name < tuned_models.json
# Send the nextPageToken to get the next page.
page_token=$(jq .nextPageToken < tuned_models.json | tr -d '"')
# FIXED (the one change to the seed's bash besides the URL and credentials): the seed prints `if [[ "$page_token" != "null"" ]]; then`.
# The stray third quote opens a string that swallows the rest of the script, so bash stops with "syntax
# error in conditional expression" / "unexpected EOF while looking for matching `"'" and nothing from here
# on can run. The extra `"` is removed.
if [[ "$page_token" != "null" ]]; then
# Kept as written although broken: `?page_token=${page_token}?key=$GOOGLE_API_KEY` puts "?key=…" inside the
# page_token value, so this request carries no credentials and is answered 403 (PERMISSION_DENIED,
# unregistered caller) into tuned_models2.json, with curl still exiting 0; and the seed's jq then reads
# tuned_models.json again, not tuned_models2.json, so it prints the first page a second time.
curl -X GET $ATTUNE_URL/v1beta/tunedModels?page_size=5\&page_token=${page_token}?key=$GOOGLE_API_KEY \
-H "Content-Type: application/json" > tuned_models2.json
jq .tunedModels[].name < tuned_models.json
fi

echo '== seed 003: create tuned model'
# Abgestimmtes Modell erstellen
curl -X POST "$ATTUNE_URL/v1beta/tunedModels?key=$GOOGLE_API_KEY" \
-H 'Content-Type: application/json' \
-d '
{
"display_name": "number generator model",
"base_model": "models/gemini-1.5-flash-001-tuning",
"tuning_task": {
"hyperparameters": {
"batch_size": 2,
"learning_rate": 0.001,
"epoch_count":5,
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

echo '== seed 003: wait for the tuning operation'
# Check the operation for status updates during training.
# Note: you can only check the operation on v1/
operation=$(cat tunemodel.json | jq ".name" | tr -d '"')
tuning_done=false
while [[ "$tuning_done" != "true" ]];
do
sleep 5
curl -X GET "$ATTUNE_URL/v1/${operation}?key=$GOOGLE_API_KEY" \
-H 'Content-Type: application/json' \
2> /dev/null > tuning_operation.json
complete=$(jq .metadata.completedPercent < tuning_operation.json)
tput cuu1
tput el
echo "Tuning...${complete}%"
tuning_done=$(jq .done < tuning_operation.json)
done
# check (not in the seed): the operation ended with the tuned model, not an error.
jq -e '.error == null and .response.state == "ACTIVE"' tuning_operation.json > /dev/null ||
  fail "the tuning operation ended without an ACTIVE model: $(cat tuning_operation.json)"

echo '== seed 003: get the tuned model'
# Or get the TunedModel and check it's state. The model is ready to use if the state is active.
modelname=$(cat tunemodel.json | jq ".metadata.tunedModel" | tr -d '"')
curl -X GET $ATTUNE_URL/v1beta/${modelname}?key=$GOOGLE_API_KEY \
-H 'Content-Type: application/json' > tuned_model.json
cat tuned_model.json | jq ".state"
# check (not in the seed): ACTIVE.
jq -e '.state == "ACTIVE"' tuned_model.json > /dev/null || fail "the tuned model is not ACTIVE: $(cat tuned_model.json)"

echo '== seed 003: generateContent'
# Modell testen. The seed's command as written; its output is kept in $answer to check it.
answer=$(
curl -X POST $ATTUNE_URL/v1beta/$modelname:generateContent?key=$GOOGLE_API_KEY \
-H 'Content-Type: application/json' \
-d '{
"contents": [{
"parts": [{
"text": "LXIII"
}]
}]
}' 2> /dev/null
)
echo "$answer"
# check (not in the seed): a candidate with non-empty text came back.
jq -e '[.candidates[0].content.parts[]?.text // empty] | join("") | length > 0' <<< "$answer" > /dev/null ||
  fail "generateContent gave no text: $answer"

echo '== seed 003: delete'
# Modell löschen. The seed's command as written; its output is kept in $deleted to check it.
deleted=$(
curl -X DELETE $ATTUNE_URL/v1beta/${modelname}?key=$GOOGLE_API_KEY \
-H 'Content-Type: application/json'
)
echo "$deleted"
# check (not in the seed): Google answers a delete with an empty object.
jq -e '. == {}' <<< "$deleted" > /dev/null || fail "delete did not answer {}: $deleted"
echo '== seed 003: done'
