package core

import (
	"encoding/json"
	"reflect"
	"sync"
)

// RequirementsSatisfied reports whether capabilities satisfy requirements:
// for each key of requirements, the capability of that name equals the
// required value or is a list containing it. Both are JSON objects.
func RequirementsSatisfied(requirements, capabilities map[string]any) bool {
	for k, want := range requirements {
		have, ok := capabilities[k]
		if !ok {
			return false
		}
		if reflect.DeepEqual(have, want) {
			continue
		}
		list, isList := have.([]any)
		if !isList {
			return false
		}
		found := false
		for _, v := range list {
			if reflect.DeepEqual(v, want) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// decodedCaps caches decoded capability objects by their JSON text: the SQL
// function prismq_req_ok is called with the same capabilities on every row.
var decodedCaps sync.Map // string -> map[string]any

func capsFromJSON(s string) map[string]any {
	if v, ok := decodedCaps.Load(s); ok {
		return v.(map[string]any)
	}
	m := map[string]any{}
	_ = json.Unmarshal([]byte(s), &m) // validated before it reaches SQL
	decodedCaps.Store(s, m)
	return m
}

// requirementsMatchJSON is the body of the SQL function prismq_req_ok.
func requirementsMatchJSON(reqs, caps string) bool {
	if reqs == "" || reqs == "{}" {
		return true
	}
	var r map[string]any
	if err := json.Unmarshal([]byte(reqs), &r); err != nil {
		return false
	}
	return RequirementsSatisfied(r, capsFromJSON(caps))
}
