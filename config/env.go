package config

import (
	"reflect"
	"strconv"
	"strings"
	"time"
)

// EnvName is the variable that overrides a dotted key:
// "http.public_url" -> "SLIPWAY_HTTP_PUBLIC_URL".
func EnvName(key string) string {
	return "SLIPWAY_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// applyEnv overrides every scalar field for which env has a non-empty
// variable (an empty one is treated as unset, so "SECRET=${UNSET}" in a
// deployment cannot silently blank a configured value). It records which
// keys were overridden and returns located messages for unparseable values.
// A list of strings takes a comma-separated value
// (SLIPWAY_HTTP_TRUSTED_PROXIES="10.0.0.0/8,192.168.0.0/16": a container
// platform sets the proxies' network without a config file); maps and
// lists of sections come only from the file.
func applyEnv(cfg *Config, env LookupEnv, set map[string]string) []string {
	e := envApplier{env: env, set: set}
	e.walk(reflect.ValueOf(cfg).Elem(), "")
	return e.msgs
}

type envApplier struct {
	env  LookupEnv
	set  map[string]string
	msgs []string
}

// walk returns whether it changed anything under v.
func (e *envApplier) walk(v reflect.Value, key string) bool {
	t := v.Type()
	switch {
	case t == typeOfDuration || t.Kind() != reflect.Struct && t.Kind() != reflect.Pointer:
		return e.scalar(v, key)
	case t.Kind() == reflect.Pointer:
		if t.Elem().Kind() != reflect.Struct {
			return false
		}
		// An absent optional section is created only if a variable fills it.
		fresh := reflect.New(t.Elem())
		if !v.IsNil() {
			fresh.Elem().Set(v.Elem())
		}
		if !e.walk(fresh.Elem(), key) {
			return false
		}
		v.Set(fresh)
		return true
	}
	changed := false
	for i := range t.NumField() {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if !f.IsExported() || name == "-" {
			continue
		}
		child := key
		if !strings.Contains(opts, "inline") {
			if name == "" {
				name = strings.ToLower(f.Name)
			}
			child = joinKey(key, name)
		}
		if e.walk(v.Field(i), child) {
			changed = true
		}
	}
	return changed
}

func (e *envApplier) scalar(v reflect.Value, key string) bool {
	name := EnvName(key)
	s, ok := e.env(name)
	if !ok || s == "" {
		return false
	}
	bad := func() bool {
		e.msgs = append(e.msgs, fmtProblem("env "+name, key, want(v.Type())+", got "+strconv.Quote(s)))
		return false
	}
	switch {
	case v.Type() == typeOfDuration:
		d, err := time.ParseDuration(s)
		if err != nil {
			return bad()
		}
		v.SetInt(int64(d))
	case v.Kind() == reflect.String:
		v.SetString(s)
	case v.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return bad()
		}
		v.SetBool(b)
	case v.CanInt():
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || v.OverflowInt(n) {
			return bad()
		}
		v.SetInt(n)
	case v.CanUint():
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil || v.OverflowUint(n) {
			return bad()
		}
		v.SetUint(n)
	case v.CanFloat():
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || v.OverflowFloat(f) {
			return bad()
		}
		v.SetFloat(f)
	case v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.String:
		var items []string
		for _, item := range strings.Split(s, ",") {
			if item = strings.TrimSpace(item); item != "" {
				items = append(items, item)
			}
		}
		if len(items) == 0 {
			return bad()
		}
		list := reflect.MakeSlice(v.Type(), len(items), len(items))
		for i, item := range items {
			list.Index(i).SetString(item)
		}
		v.Set(list)
	default:
		return false // maps, lists of sections: only from the file
	}
	e.set[key] = name
	return true
}
