// Package defaults fills options with their defaults: the one way the
// components of nerstream turn the zero values of their options into the
// defaults that their Default… functions state.
package defaults

import "reflect"

// Fill returns v with every zero field set to def's, field by field into
// nested structs (a struct field is not replaced whole, so a caller's
// setting inside it stays). Unexported fields are left as they are. T must
// be a struct type.
func Fill[T any](v, def T) T {
	fill(reflect.ValueOf(&v).Elem(), reflect.ValueOf(def))
	return v
}

func fill(v, def reflect.Value) {
	for i := range v.NumField() {
		f := v.Field(i)
		switch {
		case !f.CanSet():
		case f.Kind() == reflect.Struct:
			fill(f, def.Field(i))
		case f.IsZero():
			f.Set(def.Field(i))
		}
	}
}
