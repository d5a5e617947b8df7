# A plan whose JSON is well over a queue message (plan_test.go): it
# travels from the agent by claim check.
resource "terraform_data" "many" {
  count = 400
  input = { index = count.index, padding = "${count.index}-this-padding-makes-every-planned-resource-take-some-room-in-the-json-plan" }
}
