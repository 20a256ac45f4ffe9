package action

// Call is what reliability engineering (SLIs, circuit breakers) needs of an
// action: who makes it, at which point, and what it calls. It is passed by
// value, so that handing it over costs the library's decision path no
// allocation.
type Call struct {
	Point  Point // never empty: the action's point or its default
	Agent  string
	Server string
	Tool   string
	Model  string
}

// CallOf is the Call of a.
func CallOf(a *Action) Call {
	return Call{Point: a.PointOrDefault(), Agent: a.Agent.ID, Server: a.Tool.Server, Tool: a.Tool.Name, Model: a.Model}
}
