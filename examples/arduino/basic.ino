// rtcbot Arduino tutorial, text (examples/arduino/basic.py).
// After booting, tell the computer we are listening by sending the bytes 192, 105;
// then answer every byte received with the line "I received: <byte>".
// Sending an 'i' toggles the built-in LED.

bool ledOn = false;

void setup() {
  Serial.begin(115200);
  pinMode(LED_BUILTIN, OUTPUT);
  digitalWrite(LED_BUILTIN, ledOn);
  Serial.write(192);
  Serial.write(105);
}

void loop() {
  if (Serial.available() > 0) {
    char c = Serial.read();
    Serial.print("I received: ");
    Serial.println(c);  // println ends the line with "\r\n"; rtcbot removes both
    if (c == 'i') {
      ledOn = !ledOn;
      digitalWrite(LED_BUILTIN, ledOn);
    }
  }
}
