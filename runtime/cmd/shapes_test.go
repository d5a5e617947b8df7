package cmd_test

import (
	"reflect"
	"testing"

	"github.com/botehq/platform/runtime/botecloud"
	"github.com/botehq/platform/runtime/connector"
)

// TestCloudAndConnectorAgreeOnShapes holds the two client libraries, the
// cloud's (botecloud) and the connector's, to one shape (issue 12): a
// Handler interface with Handle(ctx, *Message) and a HandlerFunc adapter,
// an OutMessage to send, a Message that counts deliveries in
// DeliveryCount, and a Config with a value-receiver Validate.
func TestCloudAndConnectorAgreeOnShapes(t *testing.T) {
	for _, side := range []struct {
		name                                    string
		handler, handlerFunc, message, out, cfg reflect.Type
	}{
		{"botecloud", reflect.TypeFor[botecloud.Handler](), reflect.TypeFor[botecloud.HandlerFunc](),
			reflect.TypeFor[botecloud.Message](), reflect.TypeFor[botecloud.OutMessage](), reflect.TypeFor[botecloud.Config]()},
		{"connector", reflect.TypeFor[connector.Handler](), reflect.TypeFor[connector.HandlerFunc](),
			reflect.TypeFor[connector.Message](), reflect.TypeFor[connector.OutMessage](), reflect.TypeFor[connector.Config]()},
	} {
		if side.handler.Kind() != reflect.Interface || side.handler.NumMethod() != 1 {
			t.Errorf("%s.Handler is a %s with %d methods; want an interface with Handle", side.name, side.handler.Kind(), side.handler.NumMethod())
		} else if m := side.handler.Method(0); m.Name != "Handle" || m.Type.NumIn() != 2 || m.Type.In(1) != reflect.PointerTo(side.message) {
			t.Errorf("%s.Handler has %s %s; want Handle(context.Context, *Message) error", side.name, m.Name, m.Type)
		}
		if !side.handlerFunc.Implements(side.handler) {
			t.Errorf("%s.HandlerFunc is not a Handler", side.name)
		}
		if f, ok := side.message.FieldByName("DeliveryCount"); !ok || f.Type.Kind() != reflect.Int {
			t.Errorf("%s.Message has no int DeliveryCount", side.name)
		}
		if side.out.Kind() != reflect.Struct {
			t.Errorf("%s.OutMessage is a %s", side.name, side.out.Kind())
		}
		if _, ok := side.cfg.MethodByName("Validate"); !ok {
			t.Errorf("%s.Config has no value-receiver Validate", side.name)
		}
	}
}
