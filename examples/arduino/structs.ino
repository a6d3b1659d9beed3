// rtcbot Arduino tutorial, structs (examples/arduino/structs.py).
// Receives {uint16 value1, uint8 value2} (Python: writeFormat="<HB") and answers with the
// fields swapped, {uint8 value1, uint16 value2} (Python: readFormat="<BH"), each answer
// preceded by the start bytes 192, 105 so that Python can find where a message begins.
// AVR boards are little-endian and "packed" removes padding: exactly Python's "<" formats.

struct __attribute__((packed)) Command {
  uint16_t value1;
  uint8_t value2;
};

struct __attribute__((packed)) Reply {
  uint8_t value1;
  uint16_t value2;
};

const uint8_t START[2] = {192, 105};

void setup() {
  Serial.begin(115200);
}

void loop() {
  if (Serial.available() >= (int)sizeof(Command)) {
    Command in;
    Serial.readBytes((char *)&in, sizeof(in));
    Reply out;
    out.value1 = (uint8_t)in.value2;
    out.value2 = in.value1;
    Serial.write(START, sizeof(START));
    Serial.write((const uint8_t *)&out, sizeof(out));
  }
}
