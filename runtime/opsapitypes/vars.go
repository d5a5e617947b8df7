package opsapitypes

// Variable is one input variable of a workspace. A sensitive variable's
// value is never returned: it lives in the secret store and travels only
// sealed to the agent that runs the plan.
type Variable struct {
	Name      string  `json:"name"`
	Value     *string `json:"value,omitempty"`
	Sensitive bool    `json:"sensitive"`
}

// VariableList is the body of GET .../workspaces/{workspace}/vars, by name.
type VariableList struct {
	Vars []Variable `json:"vars"`
}

// SetVariableRequest is the body of PUT .../vars/{name}.
type SetVariableRequest struct {
	Value     string `json:"value"`
	Sensitive bool   `json:"sensitive,omitempty"`
}
