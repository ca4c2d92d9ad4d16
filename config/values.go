package config

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// setRaw stores a value decoded from TOML into a leaf. The rules are the
// ones setString applies to environment variables and flags, so a value means
// the same wherever it is written.
func setRaw(v reflect.Value, raw any) error {
	if s, ok := raw.(string); ok {
		// TOML has real booleans, numbers and lists; a quoted "true" in a
		// file is a mistake worth saying, unlike in an environment variable.
		if v.Kind() == reflect.String || v.Type() == byteSizeType || v.Type() == durationType {
			return setString(v, s)
		}
		return typeError(v.Type(), raw)
	}
	switch v.Type() {
	case byteSizeType:
		n, ok := raw.(int64)
		if !ok {
			return typeError(v.Type(), raw)
		}
		if n < 0 {
			return fmt.Errorf("%d is negative: a size must be zero or more", n)
		}
		v.SetInt(n)
		return nil
	case durationType:
		return typeError(v.Type(), raw)
	case boolPtrType:
		b, ok := raw.(bool)
		if !ok {
			return typeError(v.Type(), raw)
		}
		v.Set(reflect.ValueOf(&b))
		return nil
	case stringsType:
		list, ok := raw.([]any)
		if !ok {
			return typeError(v.Type(), raw)
		}
		out := make([]string, 0, len(list))
		for _, item := range list {
			s, ok := item.(string)
			if !ok {
				return typeError(v.Type(), raw)
			}
			out = append(out, s)
		}
		v.Set(reflect.ValueOf(out))
		return nil
	}
	switch v.Kind() {
	case reflect.Bool:
		b, ok := raw.(bool)
		if !ok {
			return typeError(v.Type(), raw)
		}
		v.SetBool(b)
		return nil
	case reflect.Int:
		n, ok := raw.(int64)
		if !ok {
			return typeError(v.Type(), raw)
		}
		v.SetInt(n)
		return nil
	}
	return typeError(v.Type(), raw)
}

// setString stores a textual value (a TOML string, an environment variable,
// a flag) into a leaf.
func setString(v reflect.Value, s string) error {
	switch v.Type() {
	case byteSizeType:
		b, err := ParseByteSize(s)
		if err != nil {
			return err
		}
		v.SetInt(int64(b))
		return nil
	case durationType:
		d, err := ParseDuration(s)
		if err != nil {
			return err
		}
		v.SetInt(int64(d))
		return nil
	case boolPtrType:
		b, err := parseBool(s)
		if err != nil {
			return err
		}
		v.Set(reflect.ValueOf(&b))
		return nil
	case stringsType:
		out := []string{}
		for _, item := range strings.Split(s, ",") {
			if item = strings.TrimSpace(item); item != "" {
				out = append(out, item)
			}
		}
		v.Set(reflect.ValueOf(out))
		return nil
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(s)
		return nil
	case reflect.Bool:
		b, err := parseBool(s)
		if err != nil {
			return err
		}
		v.SetBool(b)
		return nil
	case reflect.Int:
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("%q is not a whole number", s)
		}
		v.SetInt(int64(n))
		return nil
	}
	return fmt.Errorf("values of type %s cannot be set", v.Type())
}

func parseBool(s string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true", "1", "yes", "on":
		return true, nil
	case "false", "0", "no", "off":
		return false, nil
	}
	return false, fmt.Errorf("%q is not true or false", s)
}

// mustError is a value of the wrong TOML type; its text reads after the key:
// "cache.fsync must be true or false, not the string \"yes\"".
type mustError struct{ want, got string }

func (e *mustError) Error() string { return fmt.Sprintf("must be %s, not %s", e.want, e.got) }

// typeError says what the key wants and what it got, in words.
func typeError(t reflect.Type, raw any) error {
	return &mustError{want: wantDesc(t), got: rawDesc(raw)}
}

func wantDesc(t reflect.Type) string {
	switch t {
	case byteSizeType:
		return `a size such as "5GB"`
	case durationType:
		return `a duration such as "30s" or "7d"`
	case boolPtrType:
		return "true or false"
	case stringsType:
		return `a list of strings such as ["gradle", "bazel"]`
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int:
		return "a whole number"
	}
	return t.String()
}

func rawDesc(raw any) string {
	switch x := raw.(type) {
	case string:
		return fmt.Sprintf("the string %q", x)
	case int64:
		return fmt.Sprintf("the number %d", x)
	case float64:
		return fmt.Sprintf("the number %g", x)
	case bool:
		return fmt.Sprintf("%t", x)
	case []any, []map[string]any:
		return "a list"
	case map[string]any:
		return "a table"
	case time.Time:
		return "a date"
	}
	return fmt.Sprintf("%T", raw)
}

// display renders a leaf's value the way a TOML file would spell it.
func display(v reflect.Value) string {
	switch v.Type() {
	case byteSizeType:
		return strconv.Quote(ByteSize(v.Int()).String())
	case durationType:
		return strconv.Quote(Duration(v.Int()).String())
	case boolPtrType:
		if v.IsNil() {
			return ""
		}
		return strconv.FormatBool(v.Elem().Bool())
	case stringsType:
		parts := make([]string, v.Len())
		for i := range parts {
			parts[i] = strconv.Quote(v.Index(i).String())
		}
		return "[" + strings.Join(parts, ", ") + "]"
	}
	switch v.Kind() {
	case reflect.String:
		return strconv.Quote(v.String())
	case reflect.Bool:
		return strconv.FormatBool(v.Bool())
	case reflect.Int:
		return strconv.FormatInt(v.Int(), 10)
	}
	return fmt.Sprint(v.Interface())
}
