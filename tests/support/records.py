"""A valid bike-demand prediction record, shared by the tests and the load generator."""

BIKE_RECORD = {
    "hr": 8,
    "weekday": 2,
    "workingday": 1,
    "holiday": 0,
    "weathersit": "clear",
    "temp": 0.5,
    "atemp": 0.48,
    "hum": 0.6,
    "windspeed": 0.2,
}
